import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import WebSocket from 'ws';

/**
 * Node arguments that open a child's inspector on a free port of 127.0.0.1 (found here; the child is not
 * asked to pick one, since its stderr is not read) without printing its address to stderr.
 */
export async function inspectorNodeArgs(): Promise<{ port: number; nodeArgs: string[] }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return { port, nodeArgs: [`--inspect=127.0.0.1:${port}`, '--inspect-publish-uid=http'] };
}

/**
 * Forces a full garbage collection of the main thread of the process whose inspector listens on
 * `127.0.0.1:port`: `HeapProfiler.collectGarbage` twice over its WebSocket, then `settleMs` for the
 * allocator to hand freed pages back. The session is closed again before returning (a process with a
 * debugger attached waits for it to leave before exiting).
 */
export async function collectGarbage(port: number, settleMs = 500): Promise<void> {
  const { body } = await request(`http://127.0.0.1:${port}/json/list`);
  const [target] = (await body.json()) as { webSocketDebuggerUrl: string }[];
  if (!target) throw new Error(`no inspector target on port ${port}`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  try {
    for (const id of [1, 2]) {
      const answered = new Promise<void>((resolve, reject) => {
        const onMessage = (raw: WebSocket.RawData) => {
          const message = JSON.parse(String(raw)) as { id?: number; error?: { message: string } };
          if (message.id !== id) return;
          socket.off('message', onMessage);
          if (message.error) reject(new Error(`HeapProfiler.collectGarbage: ${message.error.message}`));
          else resolve();
        };
        socket.on('message', onMessage);
      });
      socket.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      await answered;
    }
  } finally {
    socket.close();
  }
  await sleep(settleMs);
}
