import { randomUUID } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import type { ChatMessage } from '../src/actors/inference/types.js';

const chatFrame = z.object({ type: z.literal('chat'), text: z.string(), clientMsgId: z.string().optional() });

/** How the durable floor makes things durable, as the contract requires of the gateway. */
export interface DurableWrites {
  /** The user's message, before `accepted`. */
  accept(jobId: string, text: string): Promise<void>;
  /** Each event, before it is sent (write-ahead). */
  event(jobId: string, seq: number, event: string, data: Record<string, unknown>): Promise<void>;
}

/**
 * The floor under the first-result latency: the least a gateway built on these libraries can do for one
 * chat on this machine — a WebSocket server (ws) that answers `accepted`, calls the classifier with
 * undici, and sends the answer as `result` then `done` — with no job machine, actors or hub. With
 * `durable`, the message is also written (in parallel with the call) before `accepted`, and each event
 * before it is sent, as the contract asks. Measured like the gateway, it tells how much of our overhead
 * is the machine, the libraries and the durable writes.
 */
export async function startRelayFloor(baseUrl: string, systemPrompt: string, durable?: DurableWrites): Promise<{ url: string; close: () => Promise<void> }> {
  const client = createOpenAIClient({ baseUrl, model: 'bench' });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (socket) => {
    socket.on('message', async (raw) => {
      const frame = chatFrame.parse(JSON.parse(String(raw)));
      const jobId = randomUUID();
      const written = durable?.accept(jobId, frame.text);
      const messages: ChatMessage[] = [
        { role: 'system', content: systemPrompt },
        { role: 'user', content: frame.text },
      ];
      const replied = client.complete({ messages }, new AbortController().signal);
      await written;
      socket.send(JSON.stringify({ type: 'accepted', jobId, conversationId: jobId, clientMsgId: frame.clientMsgId }));
      const reply = await replied;
      const at = new Date().toISOString();
      const result = { content: reply.content };
      await durable?.event(jobId, 1, 'result', result);
      socket.send(JSON.stringify({ type: 'event', jobId, seq: 1, event: 'result', data: result, at }));
      await durable?.event(jobId, 2, 'done', {});
      socket.send(JSON.stringify({ type: 'event', jobId, seq: 2, event: 'done', data: {}, at }));
    });
  });
  const { port } = wss.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}`, close: () => new Promise((resolve) => wss.close(() => resolve())) };
}
