import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Runtime } from '../runtime/create-runtime.js';
import { createAuthenticator } from './authenticator.js';
import { createHostCheck } from './host-check.js';
import { handleJobTrace } from './job-trace-route.js';
import { createOpenAiApi } from './openai-api.js';
import { RefusalLog } from './refusal-log.js';
import { refuseBody } from './refuse-body.js';
import { createSynologyWebhook, type SynologyWebhookOptions } from './synology/webhook.js';
import { createWebPage } from './web-page.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  runtime: Runtime;
  log: Logger;
  /** Test hooks for the Synology webhook (a virtual clock, a fetch, the bad-token limit). */
  synology?: Pick<SynologyWebhookOptions, 'clock' | 'fetch' | 'badTokenLimit' | 'badTokenWindowMs'>;
}

export interface RunningHttpServer {
  server: Server;
  /** `http://host:port` as bound (the real port when 0 was asked for). */
  url: string;
  /** Before the store closes at a graceful stop: the Synology webhook's `settle` (replies owed stored, then posted until `untilMs`). */
  settle(untilMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Sends a JSON body with the right headers. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The HTTP side of the gateway: health, status, and (as they arrive) the APIs and the web page. Without
 * auth tokens a request whose `Host` is not this server's name is refused (403, see `createHostCheck`).
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { runtime, log } = options;
  const { config } = runtime;
  const hostAllowed = createHostCheck({ tokens: config.auth.tokens, hosts: [options.host, config.server.host] });
  const refusals = new RefusalLog({ log, message: 'http request refused' });
  const synology = config.synology === null ? null : createSynologyWebhook({ runtime, log, ...options.synology });
  const openAiApi = createOpenAiApi({ config, runtime, log });
  const webPage = createWebPage();
  const authenticate = createAuthenticator(config.auth.tokens);
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!hostAllowed(req.headers.host)) {
      refusals.note(req.socket.remoteAddress, { status: 403, reason: 'foreign_host' });
      return sendJson(res, 403, { error: { type: 'forbidden', message: FOREIGN_HOST_MESSAGE } });
    }
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    // Open doors: the health check, and the Synology webhook (Synology sends its own token in the form).
    if (req.method === 'GET' && path === '/healthz') {
      if (refuseBody(req, res)) return;
      // 503 while the store cannot be used: nothing can be accepted then.
      void runtime.health().then((health) => sendJson(res, health.ok ? 200 : 503, health));
      return;
    }
    if (req.method === 'POST' && path === '/synology/webhook' && synology !== null) return synology.handle(req, res);
    // The OpenAI API answers its own 401 in OpenAI's error shape, which its clients read.
    if (openAiApi.handle(req, res, path)) return;
    // The web page's files are open (it asks for the token its WebSocket needs); its data is not.
    if (webPage.handle(req, res, path)) return;
    // Every other route needs the token when `auth.tokens` is set (DESIGN §5).
    const owner = authenticate(req, new URL(req.url ?? '/', 'http://localhost'));
    if (owner === null) {
      refusals.note(req.socket.remoteAddress, { status: 401, reason: 'unauthorized' });
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: { type: 'unauthorized', message: 'a valid bearer token is required' } });
    }
    if (refuseBody(req, res)) return;
    if (handleJobTrace(req, res, path, owner, runtime)) return;
    if (req.method === 'GET' && path === '/status') return sendJson(res, 200, runtime.status());
    if (req.method === 'GET' && path === '/metrics') {
      void runtime.metrics.scrape().then(
        (text) => {
          res.writeHead(200, { 'content-type': runtime.metrics.contentType, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        (error: unknown) => {
          log.error({ err: error, path }, 'request failed');
          sendJson(res, 500, { error: { type: 'internal', message: 'internal error' } });
        },
      );
      return;
    }
    sendJson(res, 404, { error: { type: 'not_found', message: `no route for ${req.method} ${path}` } });
  };
  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (error) {
      log.error({ err: error, path: req.url?.split('?', 1)[0] }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { error: { type: 'internal', message: 'internal error' } });
      else res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    settle: async (untilMs) => {
      await synology?.settle(untilMs);
    },
    close: async () => {
      await synology?.close();
      await new Promise<void>((resolve) => {
        refusals.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Why a request with a foreign `Host` was refused (a web page may not drive a gateway without auth). */
export const FOREIGN_HOST_MESSAGE =
  'the Host header does not name this server; without auth tokens only localhost, 127.0.0.1, [::1] and server.host are served';
