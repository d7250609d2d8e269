import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataDirInUseError } from './actors/store/data-dir-lock.js';
import { configSource, describeDatabase } from './cli/start-line.js';
import { parseStartArgs, START_HELP } from './cli/start-options.js';
import { ConfigError, impliedSettings, loadConfig } from './config/load-config.js';
import { maskSecrets, maskUrlPassword } from './config/mask-secrets.js';
import { createLogger } from './log.js';
import { PACKAGE_ROOT } from './package-root.js';
import { createRuntime } from './runtime/create-runtime.js';
import { inspectorNotice, startStatelyInspector, type StatelyInspector } from './inspect/stately-inspector.js';
import { startGateway } from './transport/start-gateway.js';

/** `npm start [-- options]` (see `--help`): load the config, start the runtime and the server, stop cleanly on a signal. */
async function main(): Promise<void> {
  const command = parseStartArgs(process.argv.slice(2));
  switch (command.kind) {
    case 'help':
      process.stdout.write(`${START_HELP}\n`);
      return;
    case 'version':
      process.stdout.write(`switchboard ${packageVersion()}\n`);
      return;
    case 'usage-error':
      process.stderr.write(`switchboard: ${command.message}\n\n${START_HELP}\n`);
      process.exit(2);
  }
  let config;
  try {
    config = loadConfig(command.config === undefined ? {} : { path: command.config });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (command.kind === 'print-config') {
    process.stdout.write(`${JSON.stringify(maskSecrets(config), null, 2)}\n`);
    return;
  }
  const log = createLogger();
  // `--inspect`: the relay first, so the actors' first events have somewhere to go. Off by default, and
  // then no actor is given an inspector at all.
  let inspector: StatelyInspector | undefined;
  if (command.inspect !== undefined) {
    try {
      inspector = await startStatelyInspector({ port: command.inspect });
    } catch (error) {
      process.stderr.write(`switchboard: --inspect: cannot listen on 127.0.0.1:${command.inspect}: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    }
  }

  let http: Awaited<ReturnType<typeof startGateway>> | undefined;
  let stopping = false;
  const shutdown = async (why: string, graceMs: number, exitCode: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'shutting down');
    // Order: refuse new messages, give running jobs their grace period while their clients stay connected
    // to receive the rest, cancel what is left (aborting backend requests), store the replies still owed
    // to Synology and post them for what is left of the grace period, write what is queued and close the
    // store; then close the connections and flush the logs.
    await runtime.stop(graceMs, { beforeClose: async (graceEndsAt) => http?.settle(graceEndsAt) });
    await http?.close();
    await inspector?.stop();
    log.info('stopped');
    log.flush();
    process.exit(exitCode);
  };

  const runtime = createRuntime(config, {
    log,
    ...(inspector ? { inspect: inspector.inspect } : {}),
    // Let it crash: a restarted process ends the jobs it left running with `interrupted`.
    onFatal: () => {
      log.flush();
      process.exit(70);
    },
    // Nothing can be stored any more: stop as cleanly as still possible (jobs are cancelled at once,
    // clients told), and exit non-zero so a supervisor restarts us on a fresh database thread.
    onStoreLost: () => {
      const forced = setTimeout(() => {
        log.flush();
        process.exit(1);
      }, 5_000);
      forced.unref();
      void shutdown('the embedded database stopped', 0, 1);
    },
  });
  await runtime.start();
  http = await startGateway({ host: config.server.host, port: config.server.port, runtime, log });
  log.info(
    {
      url: http.url,
      config: configSource(command.config),
      database: describeDatabase(config),
      backends: Object.entries(config.backends).map(([name, backend]) => ({ name, url: maskUrlPassword(backend.baseUrl), model: backend.model })),
    },
    'switchboard listening',
  );
  if (inspector) log.info({ inspector: inspector.pageUrl }, inspectorNotice(inspector));
  const implied = impliedSettings(config);
  if (implied.length > 0) log.info({ implied }, `not in the config, so: ${implied.join('; ')}`);

  process.on('SIGTERM', () => void shutdown('SIGTERM', config.shutdown.graceMs, 0));
  process.on('SIGINT', () => void shutdown('SIGINT', config.shutdown.graceMs, 0));
}

/** The version in package.json, beside `src/`. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

main().catch((error: unknown) => {
  // Another process has the embedded database: its sentence says what to do, nothing to add.
  if (error instanceof DataDirInUseError) {
    process.stderr.write(`switchboard: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`switchboard: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
