import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/config-schema.js';
import { DEFAULT_CONFIG_PATH } from '../config/load-config.js';

/* What the start line says about where the gateway's settings and data are. */

/** Which file the config came from, for the start line. */
export function configSource(path: string | undefined): string {
  if (path !== undefined) return resolve(path);
  return existsSync(DEFAULT_CONFIG_PATH) ? resolve(DEFAULT_CONFIG_PATH) : 'built-in defaults (no switchboard.config.json here)';
}

/** The database for the start line: PGlite's folder, or PostgreSQL's host, port and database — never a password. */
export function describeDatabase(config: Config): string {
  const { url, dataDir } = config.database;
  if (!url) return dataDir.startsWith('memory://') ? 'PGlite in memory' : `PGlite in ${resolve(dataDir)}`;
  try {
    const parsed = new URL(url);
    return `PostgreSQL at ${parsed.host || 'the local socket'}${parsed.pathname.length > 1 ? `, database ${decodeURIComponent(parsed.pathname.slice(1))}` : ''}`;
  } catch {
    return 'PostgreSQL (a connection string that is not a URL)';
  }
}
