import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

/** The Stately inspector's page, which the relay's page embeds (loaded only when someone opens that page). */
export const STATELY_INSPECTOR_PAGE = 'https://stately.ai/inspect';

/** Inspection messages kept for a page that connects late (as `@statelyai/inspect/server` does). */
const REPLAY_BUFFER = 200;

export interface InspectorRelay {
  /** The page to open: it embeds the Stately inspector and feeds it from `wsUrl`. */
  pageUrl: string;
  /** Where `createWebSocketInspector` sends inspection events (`ws://127.0.0.1:PORT`). */
  wsUrl: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The local relay between the gateway's WebSocket inspector and the Stately inspector in a browser: the
 * protocol of `@statelyai/inspect/server`'s `createInspectorServer` (every message from one client goes to
 * all the others; the last 200 are replayed to a newcomer; `GET /` is a page that embeds the inspector and
 * forwards what arrives on the WebSocket to it), with three differences, since these messages carry users'
 * text (snapshots hold a job's context):
 * - it listens on the loopback address only (the library's listens on every interface, so anyone on the
 *   network could read along), and on port 0 it says which port it got;
 * - a browser may connect only from this relay's own page: another site's script in the user's browser
 *   could otherwise open `ws://127.0.0.1:PORT` and read everything (clients without an `Origin` header are
 *   programs on this machine, such as the gateway itself);
 * - it never opens a browser.
 */
export async function startInspectorRelay(options: { port: number; host?: string }): Promise<InspectorRelay> {
  const host = options.host ?? '127.0.0.1';
  let page = '';
  const http = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' || path !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }).end(page);
  });
  let ownOrigins: ReadonlySet<string> = new Set();
  const wss = new WebSocketServer({
    server: http,
    verifyClient: ({ req }: { req: IncomingMessage }, done: (ok: boolean, status?: number, message?: string) => void) => {
      const { origin } = req.headers;
      if (origin === undefined || ownOrigins.has(origin)) done(true);
      else done(false, 403, 'only the relay page may connect');
    },
  });
  const buffer: string[] = [];
  wss.on('connection', (socket) => {
    for (const message of buffer) socket.send(message);
    socket.on('message', (data) => {
      const message = String(data);
      buffer.push(message);
      if (buffer.length > REPLAY_BUFFER) buffer.shift();
      for (const client of wss.clients) if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const { port } = http.address() as AddressInfo;
  const name = host.includes(':') ? `[${host}]` : host;
  ownOrigins = new Set([`http://${name}:${port}`, `http://localhost:${port}`]);
  const wsUrl = `ws://${name}:${port}`;
  page = bridgePage(wsUrl);
  return {
    pageUrl: `http://${name}:${port}/`,
    wsUrl,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

/**
 * The page of `@statelyai/inspect/server` (MIT): the Stately inspector in a frame, fed by postMessage
 * with what arrives on the relay's WebSocket, buffered until the inspector says it is connected.
 */
function bridgePage(wsUrl: string): string {
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Switchboard — Stately Inspector</title>
  <style>
    * { margin: 0; padding: 0; }
    html, body { height: 100%; }
    iframe { width: 100%; height: 100%; border: none; }
  </style>
</head>
<body>
  <iframe id="inspector" src="${STATELY_INSPECTOR_PAGE}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let connected = false;
    window.addEventListener('message', (e) => {
      if (e.data && e.data.type === '@statelyai.connected') {
        connected = true;
        buffer.forEach((event) => iframe.contentWindow.postMessage(event, '*'));
        buffer.length = 0;
      }
    });
    const ws = new WebSocket(${JSON.stringify(wsUrl)});
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (connected) iframe.contentWindow.postMessage(data, '*');
      else buffer.push(data);
    };
  </script>
</body>
</html>
`;
}
