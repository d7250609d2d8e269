import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { z } from 'zod';
import { configSchema, type Config } from './config-schema.js';
import { describeJsonSyntaxError } from './json-syntax-error.js';
import { maskUrlPassword } from './mask-secrets.js';
import { allowedKeysAt, closestKey } from './schema-keys.js';

/** The default config file, read from the working directory when present. */
export const DEFAULT_CONFIG_PATH = 'switchboard.config.json';

/** A config that cannot be used; `problems` holds one readable line per problem (path: expectation). */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** `--config PATH`; when given the file must exist. */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

/** Reads, overrides from the environment, validates and freezes the configuration. Throws `ConfigError`. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? DEFAULT_CONFIG_PATH;
  let raw: unknown = {};
  if (options.path !== undefined || existsSync(path)) {
    raw = readJsonFile(path);
  }
  const overrides = envOverrides(env);
  try {
    return parseConfig(applyEnvOverrides(raw, overrides));
  } catch (error) {
    // A value from the environment is invisible in the file: say which variable a refused one came from.
    if (!(error instanceof ConfigError) || overrides.length === 0) throw error;
    throw new ConfigError(error.problems.map((line) => nameTheVariable(line, overrides)));
  }
}

/** One environment variable that overrides a config key. */
interface EnvOverride {
  /** The key, e.g. `server.port`; `auth.tokens` takes the value as its only token. */
  path: string;
  variable: string;
  value: unknown;
  /** How the value may be shown in an error (a token is never shown). */
  shown: string;
}

function envOverrides(env: NodeJS.ProcessEnv): EnvOverride[] {
  const overrides: EnvOverride[] = [];
  const add = (path: string, variable: string, value: unknown, shown: string | null): void => {
    overrides.push({ path, variable, value, shown: shown === null ? variable : `${variable}=${shown}` });
  };
  const { DATABASE_URL, SWITCHBOARD_PORT, SWITCHBOARD_TOKEN, SYNOLOGY_TOKEN, SYNOLOGY_INCOMING_URL } = env;
  if (DATABASE_URL) add('database.url', 'DATABASE_URL', DATABASE_URL, maskUrlPassword(DATABASE_URL));
  if (SWITCHBOARD_PORT) add('server.port', 'SWITCHBOARD_PORT', Number(SWITCHBOARD_PORT), JSON.stringify(SWITCHBOARD_PORT).slice(1, -1));
  if (SWITCHBOARD_TOKEN) add('auth.tokens', 'SWITCHBOARD_TOKEN', [SWITCHBOARD_TOKEN], null);
  if (SYNOLOGY_TOKEN) add('synology.token', 'SYNOLOGY_TOKEN', SYNOLOGY_TOKEN, null);
  if (SYNOLOGY_INCOMING_URL) add('synology.incomingUrl', 'SYNOLOGY_INCOMING_URL', SYNOLOGY_INCOMING_URL, maskUrlPassword(SYNOLOGY_INCOMING_URL));
  return overrides;
}

/** `server.port: expected …` → `server.port (SWITCHBOARD_PORT=abc): expected …` when a variable set it. */
function nameTheVariable(line: string, overrides: readonly EnvOverride[]): string {
  for (const { path, shown } of overrides) {
    const match = new RegExp(`^(${path.replace(/\./g, '\\.')}(?:\\.[^:\\s]+)?): `).exec(line);
    if (match) return `${match[1]} (${shown}): ${line.slice(match[0].length)}`;
  }
  return line;
}

/** What each loaded config took from defaults that depend on the rest of it (for the start log). */
const implied = new WeakMap<Config, string[]>();

/** Validates a raw config object (already merged with env overrides). Throws `ConfigError`. */
export function parseConfig(raw: unknown): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues));
  const written = writtenRolesAndModes(raw);
  const problems = crossCheck(parsed.data, written);
  if (problems.length > 0) throw new ConfigError(problems);
  const config = deepFreeze(parsed.data);
  implied.set(config, describeImplied(config, written));
  return config;
}

/**
 * Sentences for the start log naming the roles and modes that were not written and what they became,
 * e.g. `roles.classifier and roles.reasoner: "ollama" (the only backend)`. Empty when all were written.
 */
export function impliedSettings(config: Config): readonly string[] {
  return implied.get(config) ?? [];
}

interface Written {
  classifier: boolean;
  reasoner: boolean;
  modes: boolean;
}

function writtenRolesAndModes(raw: unknown): Written {
  const record = (value: unknown): Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const roles = record(record(raw).roles);
  return { classifier: roles.classifier !== undefined, reasoner: roles.reasoner !== undefined, modes: record(raw).modes !== undefined };
}

function describeImplied(config: Config, written: Written): string[] {
  const names = Object.keys(config.backends);
  const which = names.length === 1 ? 'the only backend' : 'the first backend';
  const roles = (['classifier', 'reasoner'] as const).filter((role) => !written[role]).map((role) => `roles.${role}`);
  const lines: string[] = [];
  if (roles.length > 0) lines.push(`${roles.join(' and ')}: "${names[0]}" (${which})`);
  if (!written.modes) {
    const modes = Object.entries(config.modes).map(([mode, backend]) => (mode === backend ? mode : `${mode} → ${backend}`));
    lines.push(`modes: ${modes.length > 0 ? `${modes.join(', ')} (one per backend)` : 'none (no backend name can be a mode name)'}`);
  }
  return lines;
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`${path}: cannot read the file (${code})`]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError([describeJsonSyntaxError(path, text, (error as Error).message)]);
  }
}

function applyEnvOverrides(raw: unknown, overrides: readonly EnvOverride[]): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const config = structuredClone(raw) as Record<string, Record<string, unknown> | undefined>;
  const section = (name: string): Record<string, unknown> => {
    const existing = config[name];
    if (typeof existing === 'object' && existing !== null) return existing;
    const created: Record<string, unknown> = {};
    config[name] = created;
    return created;
  };
  for (const { path, value } of overrides) {
    const [name, key] = path.split('.') as [string, string];
    section(name)[key] = value;
  }
  return config;
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    if (issue.code === 'unrecognized_keys') {
      // One line per key, with the key it most likely meant and every key allowed there.
      const allowed = allowedKeysAt(configSchema, issue.path);
      return issue.keys.map((key) => {
        const meant = closestKey(key, allowed);
        const hint = meant === null ? '' : ` did you mean "${meant}"?`;
        return `${where === '(root)' ? '' : `${where}.`}${key}: unknown key,${hint} expected one of: ${allowed.join(', ')}`;
      });
    }
    return [`${where}: ${issue.message}`];
  });
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Host of a URL without IPv6 brackets, lower-cased. */
function hostOf(value: string): string {
  return new URL(value).hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** True when `host` matches an `egress.allowHosts` entry: exact, or `*.example.org` for subdomains. */
export function hostAllowed(host: string, allowHosts: readonly string[]): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return allowHosts.some((entry) => {
    const e = entry.replace(/^\[|\]$/g, '').toLowerCase();
    return e.startsWith('*.') ? h.endsWith(e.slice(1)) : h === e;
  });
}

/** Checks across sections. Only names the user wrote are checked: the implied ones name real backends. */
function crossCheck(config: Config, written: Written): string[] {
  const problems: string[] = [];
  const names = Object.keys(config.backends);
  const known = `one of the configured backends (${names.join(', ') || 'none'})`;
  if (names.length === 0) problems.push('backends: expected at least one backend');
  for (const role of ['classifier', 'reasoner'] as const) {
    const name = config.roles[role];
    if (written[role] && !Object.hasOwn(config.backends, name)) problems.push(`roles.${role}: "${name}" is not a backend, expected ${known}`);
  }
  for (const [mode, name] of written.modes ? Object.entries(config.modes) : []) {
    if (mode === 'auto') problems.push('modes.auto: "auto" is reserved for the classifier pipeline');
    if (!Object.hasOwn(config.backends, name)) problems.push(`modes.${mode}: "${name}" is not a backend, expected ${known}`);
  }

  const outbound: Array<[string, string | null | undefined]> = [];
  for (const [name, backend] of Object.entries(config.backends)) {
    outbound.push([`backends.${name}.baseUrl`, backend.baseUrl], [`backends.${name}.statusUrl`, backend.statusUrl]);
  }
  outbound.push(['tools.calendar.url', config.tools.calendar?.url], ['tools.email.url', config.tools.email?.url]);
  outbound.push(['synology.incomingUrl', config.synology?.incomingUrl]);
  for (const [where, value] of outbound) {
    if (!value) continue;
    const host = hostOf(value);
    if (!hostAllowed(host, config.egress.allowHosts)) {
      problems.push(`${where}: host "${host}" is not in egress.allowHosts, expected one of ${config.egress.allowHosts.join(', ')}`);
    }
  }

  if (config.auth.tokens.length === 0 && !isLoopback(config.server.host)) {
    problems.push(
      `auth.tokens: expected at least one token when server.host is "${config.server.host}" (no auth is only allowed on loopback)`,
    );
  }
  return problems;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
