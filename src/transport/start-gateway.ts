import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.js';
import { startHttpServer, type HttpServerOptions } from './http-server.js';
import { attachWebSocket, type WebSocketOptions } from './ws-server.js';

/** The running transports of one gateway. */
export interface Gateway {
  /** `http://host:port` as bound. */
  url: string;
  /**
   * For a graceful stop, as the runtime's `beforeClose`: hands what the transports still owe (Synology
   * replies) to the store and delivers it until `untilMs` (the end of the grace period).
   */
  settle(untilMs: number): Promise<void>;
  /** Stop accepting and close every connection (the runtime is stopped separately, after this). */
  close(): Promise<void>;
}

/** Starts the HTTP server (health, status, APIs) with the WebSocket endpoint on it. */
export async function startGateway(options: {
  runtime: Runtime;
  log: Logger;
  host: string;
  port: number;
  /** WebSocket limits other than the config's and the defaults (benchmarks raise the per-connection frame rate). */
  ws?: Partial<Pick<WebSocketOptions, 'maxFramesPerSecond' | 'highWaterBytes' | 'maxQueuedBytes' | 'stallMs' | 'heartbeatMs'>>;
  /** Synology webhook hooks for tests (a virtual clock, a fetch). */
  synology?: HttpServerOptions['synology'];
}): Promise<Gateway> {
  const { runtime, log } = options;
  const http = await startHttpServer({ host: options.host, port: options.port, runtime, log, ...(options.synology ? { synology: options.synology } : {}) });
  const ws = attachWebSocket(http.server, { runtime, config: runtime.config, log, ...options.ws });
  return {
    url: http.url,
    settle: (untilMs) => http.settle(untilMs),
    close: async () => {
      await ws.close();
      await http.close();
    },
  };
}
