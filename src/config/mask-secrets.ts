/** What a masked secret prints as. */
export const MASK = '********';

/** Keys whose string values are secrets wherever they appear (tokens, passwords, API keys). */
const SECRET_KEY = /token|password|secret|apikey/i;

/**
 * A copy of a config (or any JSON value) fit to print: secret values replaced by {@link MASK}, and the
 * password of any URL (a PostgreSQL `database.url`) masked in place. `passwordEnv` names a variable, not
 * a secret, and is kept.
 */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, key));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  if (typeof value !== 'string') return value;
  if (SECRET_KEY.test(key) && !/Env$/.test(key)) return MASK;
  return maskUrlPassword(value);
}

/**
 * `postgres://user:pw@host/db` → `postgres://user:********@host/db`, and a secret in the query (a
 * Synology incoming webhook's `token=…`, an `api_key=…`) masked the same way; other strings unchanged.
 */
export function maskUrlPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    const secretParams = [...url.searchParams.keys()].filter((name) => SECRET_KEY.test(name.replace(/[_-]/g, '')));
    if (url.password === '' && secretParams.length === 0) return value;
    if (url.password !== '') url.password = MASK;
    for (const name of secretParams) url.searchParams.set(name, MASK);
    return url.toString();
  } catch {
    // Not a URL after all: nothing that looks like a password to mask.
    return value;
  }
}
