import { request as undiciRequest, Agent } from 'undici';
import { benchBackend } from './harness.js';

/**
 * Streaming throughput with `streams` concurrent streams of `chunks` model chunks each, three ways over
 * the same fake: undici reading the raw SSE bodies (nothing parsed); our OpenAI client called directly
 * (SSE parsing and chunk validation); and the full path through a backend actor with enough slots for
 * all of them. Rate = model chunks delivered per second of wall time; every path must deliver all the
 * text (checked), however the actor path groups it into messages.
 */
export async function benchStreaming(baseUrl: string, streams: number, chunks: number, rounds = 3) {
  const body = JSON.stringify({ model: 'bench', stream: true, messages: [{ role: 'user', content: 'stream' }] });
  const expectedText = Array.from({ length: chunks }, (_, i) => `tok${i % 10} `).join('');
  const agent = new Agent({ connections: streams * 2, keepAliveTimeout: 10_000 });
  const direct = async (): Promise<void> => {
    const { body: stream } = await undiciRequest(`${baseUrl}/chat/completions`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      dispatcher: agent,
    });
    let bytes = 0;
    for await (const part of stream) bytes += (part as Buffer).length;
    if (bytes === 0) throw new Error('empty stream');
  };
  const { client, send, stop } = benchBackend(baseUrl, streams);
  const chat = { messages: [{ role: 'user' as const, content: 'stream' }] };
  const check = (text: string): void => {
    if (text !== expectedText) throw new Error('stream text differs from what the fake sent');
  };
  const viaClient = async (): Promise<void> => {
    let text = '';
    await client.stream(chat, { signal: new AbortController().signal, onContent: (piece) => (text += piece) });
    check(text);
  };
  const viaActor = async (): Promise<void> => {
    let text = '';
    const reply = await send(chat, 'stream', (piece) => (text += piece));
    if (reply.type !== 'infer.done') throw new Error(`bench stream failed: ${reply.type}`);
    check(text);
  };
  const run = async (one: () => Promise<void>): Promise<number> => {
    const t = performance.now();
    await Promise.all(Array.from({ length: streams }, one));
    return (streams * chunks) / ((performance.now() - t) / 1000);
  };
  await run(direct);
  await run(viaClient);
  await run(viaActor);
  const directRates: number[] = [];
  const clientRates: number[] = [];
  const actorRates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    directRates.push(await run(direct));
    clientRates.push(await run(viaClient));
    actorRates.push(await run(viaActor));
  }
  stop();
  await agent.close();
  const best = (xs: number[]) => Math.max(...xs);
  return {
    streams,
    directChunksPerSec: best(directRates),
    clientChunksPerSec: best(clientRates),
    actorChunksPerSec: best(actorRates),
    ratio: best(actorRates) / best(directRates),
    actorVsClient: best(actorRates) / best(clientRates),
  };
}
