import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './log.js';
import { createRuntime } from './runtime/create-runtime.js';
import { startGateway } from './transport/start-gateway.js';

/** `npm start [-- --config PATH]`: load the config, start the runtime and the server, stop cleanly on a signal. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } }, allowPositionals: false });
  const log = createLogger();
  let config;
  try {
    config = loadConfig(values.config === undefined ? {} : { path: values.config });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }

  const runtime = createRuntime(config, {
    log,
    // Let it crash: a restarted process ends the jobs it left running with `interrupted`.
    onFatal: () => {
      log.flush();
      process.exit(70);
    },
  });
  await runtime.start();
  const http = await startGateway({ host: config.server.host, port: config.server.port, runtime, log });
  log.info({ url: http.url, backends: Object.keys(config.backends) }, 'switchboard listening');

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Order: refuse new messages, give running jobs their grace period while their clients stay connected
    // to receive the rest, cancel what is left (aborting backend requests), flush the journal and close
    // the store; then close the connections and flush the logs.
    await runtime.stop(config.shutdown.graceMs);
    await http.close();
    log.info('stopped');
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`switchboard: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
