import { request as undiciRequest, Agent } from 'undici';
import { benchBackend } from './harness.js';

/**
 * Streaming throughput with `streams` concurrent streams: undici reading the raw SSE bodies (counting
 * `data:` lines, nothing parsed) against the full path — our SSE parser, chunk validation and one actor
 * message per chunk to the requester — through a backend actor with enough slots for all of them.
 */
export async function benchStreaming(baseUrl: string, streams = 100, rounds = 3) {
  const body = JSON.stringify({ model: 'bench', stream: true, messages: [{ role: 'user', content: 'stream' }] });
  const agent = new Agent({ connections: streams * 2, keepAliveTimeout: 10_000 });
  const direct = async (): Promise<number> => {
    const { body: stream } = await undiciRequest(`${baseUrl}/chat/completions`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      dispatcher: agent,
    });
    let chunks = 0;
    for await (const part of stream) {
      const text = (part as Buffer).toString('utf8');
      for (let i = text.indexOf('data: {'); i >= 0; i = text.indexOf('data: {', i + 1)) chunks++;
    }
    return chunks;
  };
  const { send, stop } = benchBackend(baseUrl, streams);
  const viaActor = async (): Promise<number> => {
    let chunks = 0;
    const reply = await send({ messages: [{ role: 'user', content: 'stream' }] }, 'stream', () => chunks++);
    if (reply.type !== 'infer.done') throw new Error(`bench stream failed: ${reply.type}`);
    return chunks;
  };
  const run = async (one: () => Promise<number>): Promise<number> => {
    const t = performance.now();
    const counts = await Promise.all(Array.from({ length: streams }, one));
    const seconds = (performance.now() - t) / 1000;
    return counts.reduce((a, b) => a + b, 0) / seconds;
  };
  await run(direct);
  await run(viaActor);
  const directRates: number[] = [];
  const actorRates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    directRates.push(await run(direct));
    actorRates.push(await run(viaActor));
  }
  stop();
  await agent.close();
  const best = (xs: number[]) => Math.max(...xs);
  return { streams, directChunksPerSec: best(directRates), actorChunksPerSec: best(actorRates), ratio: best(actorRates) / best(directRates) };
}
