import { ConfigError, loadConfig } from '../src/config/load-config.js';
import type { DatabaseConfig } from '../src/actors/store/create-database.js';

/**
 * The database the server would use: `switchboard.config.json` (or `--config PATH`) with DATABASE_URL
 * over it, or `--data-dir DIR` for the embedded database. Exits with the config's problems when invalid.
 */
export function databaseTarget(options: { config?: string | undefined; dataDir?: string | undefined }): DatabaseConfig & { where: string } {
  try {
    const config = loadConfig(options.config === undefined ? {} : { path: options.config });
    const url = config.database.url;
    const dataDir = options.dataDir ?? config.database.dataDir;
    return { url, dataDir, where: url ? 'PostgreSQL (database.url / DATABASE_URL)' : `PGlite in ${dataDir}` };
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
