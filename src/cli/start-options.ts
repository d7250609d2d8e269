import { parseArgs } from 'node:util';
import { DEFAULT_INSPECT_PORT } from '../inspect/stately-inspector.js';

/** What `npm start -- …` asked for. */
export type StartCommand =
  /** `inspect`: the relay's port for `--inspect[=PORT]`, undefined without it. */
  | { kind: 'start'; config: string | undefined; inspect: number | undefined }
  | { kind: 'print-config'; config: string | undefined }
  | { kind: 'help' }
  | { kind: 'version' }
  /** A mistake on the command line: one sentence, then the usage. */
  | { kind: 'usage-error'; message: string };

/** The text of `--help`: every option, the environment variables, and where to read more. */
export const START_HELP = `Usage: npm start -- [options]
       node dist/main.mjs [options]            (after npm run build)

Runs the Switchboard gateway: WebSocket and HTTP on server.host:server.port (default 127.0.0.1:8787),
the embedded database in database.dataDir (default ./data) unless database.url names PostgreSQL.

Options:
  -c, --config PATH   read the config from PATH (default: ./switchboard.config.json when it exists,
                      else built-in defaults: one backend at Ollama's http://127.0.0.1:11434/v1)
      --print-config  print the effective config (defaults filled in, secrets masked) and exit
      --inspect[=PORT]  show every actor live in the Stately inspector: starts a relay on
                      127.0.0.1:PORT (default ${DEFAULT_INSPECT_PORT}; 0 picks a free port) and prints the page to
                      open; nothing leaves this machine unless you open it (never opens a browser)
  -h, --help          print this help and exit
  -v, --version       print the version and exit

Environment:
  DATABASE_URL           PostgreSQL URL (overrides database.url)
  SWITCHBOARD_PORT       port to listen on (overrides server.port)
  SWITCHBOARD_TOKEN      an auth token (replaces auth.tokens)
  SYNOLOGY_TOKEN, SYNOLOGY_INCOMING_URL   Synology Chat settings (override synology.*)
  LOG_LEVEL              pino level: trace, debug, info (default), warn, error, fatal
  LOG_FORMAT             pretty (coloured lines; the default on a terminal) or json (the default otherwise)

Other commands: npm run migrate, npm run ingest -- DIR, npm run trace -- JOB_ID (each with --help).
Configuration keys and the protocol: README.md.`;

/** Parses `npm start`'s arguments; never throws. */
export function parseStartArgs(args: readonly string[]): StartCommand {
  let values;
  try {
    ({ values } = parseArgs({
      // `--inspect` alone means the default port (parseArgs' string options always need a value).
      args: args.map((arg) => (arg === '--inspect' ? `--inspect=${DEFAULT_INSPECT_PORT}` : arg)),
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        'print-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        inspect: { type: 'string' },
      },
    }));
  } catch (error) {
    return { kind: 'usage-error', message: firstLine(error) };
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  if (values['print-config']) return { kind: 'print-config', config: values.config };
  let inspect: number | undefined;
  if (values.inspect !== undefined) {
    inspect = /^\d{1,5}$/.test(values.inspect) ? Number(values.inspect) : NaN;
    if (!(inspect <= 65_535)) return { kind: 'usage-error', message: `--inspect=PORT needs a port number (0–65535), not ${JSON.stringify(values.inspect)}` };
  }
  return { kind: 'start', config: values.config, inspect };
}

/** Node's parseArgs messages end with advice for scripts ("To specify a positional argument…"): keep the first sentence. */
function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/\. To |\n/)[0]!.replace(/\.$/, '');
}
