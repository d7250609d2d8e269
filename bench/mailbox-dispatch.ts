import { benchBackend, stats } from './harness.js';

/**
 * Dispatch overhead of the mailbox: the same non-streaming completion against an instant fake, called on
 * the client directly and through the backend actor, interleaved in blocks so both see the same machine.
 */
export async function benchMailboxDispatch(baseUrl: string, rounds = 20, block = 100) {
  const { client, send, stop } = benchBackend(baseUrl, 1);
  const request = { messages: [{ role: 'user' as const, content: 'hi' }] };
  const direct: number[] = [];
  const viaActor: number[] = [];
  const signal = new AbortController().signal;
  for (let i = 0; i < 200; i++) await client.complete(request, signal); // warm up both paths
  for (let i = 0; i < 200; i++) await send(request, 'complete');
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await client.complete(request, signal);
      direct.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      const reply = await send(request, 'complete');
      viaActor.push(performance.now() - t);
      if (reply.type !== 'infer.done') throw new Error(`bench request failed: ${reply.type}`);
    }
  }
  stop();
  const d = stats(direct);
  const a = stats(viaActor);
  return {
    requests: direct.length,
    directMedianUs: d.median * 1000,
    actorMedianUs: a.median * 1000,
    overheadMedianUs: (a.median - d.median) * 1000,
    overheadP90Us: (a.p90 - d.p90) * 1000,
  };
}
