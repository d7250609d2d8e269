import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './log.js';
import { createRuntime } from './runtime/create-runtime.js';
import { startHttpServer } from './transport/http-server.js';

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

  const runtime = createRuntime(config, { log });
  await runtime.start();
  const http = await startHttpServer({ host: config.server.host, port: config.server.port, runtime, log });
  log.info({ url: http.url, backends: runtime.backends.names() }, 'switchboard listening');

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Order: stop accepting, then stop the actors (aborting their requests), then flush logs.
    await http.close();
    await runtime.stop();
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
