import { Agent, request } from 'undici';
import { startChildServer } from './child-fake.js';
import { startBenchGateway } from './bench-gateway.js';
import { stats } from './harness.js';

/** One open-loop run: latencies from each request's intended send time, and what failed. */
export interface OpenLoopRun {
  offered: number;
  completed: number;
  errors: number;
  /** Errors by kind: the HTTP status, `no_done` for a 200 without `[DONE]`, or the client's error code. */
  errorKinds: Record<string, number>;
  latency: ReturnType<typeof stats>;
  /** Requests per second actually completed. */
  achievedPerSec: number;
}

/**
 * Offers `rate` requests per second for `seconds` to `url`, open loop: request i is due at start + i/rate
 * whatever happened to the earlier ones, and its latency is measured from that due time, so a stall
 * shows as latency instead of slowing the offer down (no coordinated omission).
 */
export async function openLoop(url: string, model: string, rate: number, seconds: number): Promise<OpenLoopRun> {
  // Keep-alive connections, as many as the load needs (a new TCP connection per request would measure
  // connecting, not the gateway).
  const dispatcher = new Agent({ connections: 2_000, pipelining: 1, keepAliveTimeout: 10_000 });
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], stream: true });
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  let errors = 0;
  const errorKinds: Record<string, number> = {};
  const failed = (kind: string): void => {
    errors += 1;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const started = performance.now();
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(
      request(url, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body })
        .then(async (response) => {
          const text = await response.body.text();
          if (response.statusCode !== 200) failed(String(response.statusCode));
          else if (!text.includes('[DONE]')) failed('no_done');
          else latencies.push(performance.now() - due);
        })
        .catch((error: unknown) => failed((error as { code?: string }).code ?? 'client_error')),
    );
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - started) / 1000;
  await dispatcher.close();
  return { offered: total, completed: latencies.length, errors, errorKinds, latency: stats(latencies), achievedPerSec: latencies.length / elapsed };
}

/**
 * `POST /v1/chat/completions` with a mode under an open-loop load, the same offer three times one after
 * the other in one run: to the fake directly, through the floor (a bare relay, bench/relay-server.ts)
 * and through the gateway. The relay and the gateway each run in their own process (the gateway as
 * `npm start` runs it, on a fresh embedded database, or PostgreSQL with `databaseUrl`), so this process's
 * load generator does not share their event loop. The overhead is the difference of the p99s (and
 * medians) against direct; the floor's is what these libraries cost on this machine under that load.
 */
export async function benchOpenAiLoad(baseUrl: string, rate: number, seconds: number, databaseUrl: string | null = null) {
  const relay = await startChildServer('./relay-server.ts', { RELAY_TARGET: baseUrl });
  // Every request of the offer may wait in the gateway at once: it is measured past saturation.
  const gateway = await startBenchGateway(baseUrl, databaseUrl, 64, [], { maxActiveJobs: 1_000_000, connectionsPerOwner: 1_000_000, pendingJobsPerOwner: 1_000_000 });
  try {
    const direct = await openLoop(`${baseUrl}/chat/completions`, 'bench', rate, seconds);
    const floor = await openLoop(`${relay.baseUrl}/v1/chat/completions`, 'bench', rate, seconds);
    const via = await openLoop(`${gateway.url}/v1/chat/completions`, 'daily', rate, seconds);
    return {
      rate,
      seconds,
      direct,
      floor,
      via,
      overheadMedianMs: via.latency.median - direct.latency.median,
      overheadP99Ms: via.latency.p99 - direct.latency.p99,
      floorOverheadMedianMs: floor.latency.median - direct.latency.median,
      floorOverheadP99Ms: floor.latency.p99 - direct.latency.p99,
    };
  } finally {
    relay.stop();
    await gateway.stop();
  }
}
