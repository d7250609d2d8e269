/**
 * Load (issue 14, reliability suite): 1000 WebSocket clients × 5 jobs each through a real gateway in
 * process, the fakes answering at once. Ten owners (tokens) hold 100 connections each; every client sends
 * its five chats at once, half of them answered by the classifier directly and half routed to the
 * reasoner's stream, with more jobs than `limits.maxActiveJobs` so that many wait in line (`queued`).
 *
 * Checked: every `accepted` jobId is distinct; every job has its events and exactly one terminal event,
 * `done`, last, with its expected answer; each job's seqs are 1..n; a client hears of no job but its own
 * and gets no error frame; a `subscribe {afterSeq: 0}` of every job after the run (from the journal: the
 * jobs have ended) equals what the live client saw, event by event (seq, event, data, at) — nothing lost,
 * nothing duplicated, nothing sent that the journal does not hold. Then the clients close and the gateway
 * goes back to idle: no job active or pending, no WebSocket connection, and `heapUsed` after full
 * collections within 20 MiB of the idle reading taken before the load (after a small warm-up round, so
 * that lazily built code counts as idle). The figures are printed. What stays is mostly the conversation
 * cache (src/actors/store/conversation-store.ts): every one of the 5000 new conversations is kept for its
 * 1 h TTL, about 1.2 KB each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { scriptModels } from '../helpers/scripted-models.js';
import { collectGarbage, isTerminalEvent, JobClient, MIB, startTunedGateway, waitUntil, type EventFrame, type TunedGateway } from '../helpers/tuned-gateway.js';

const OWNERS = 10;
const CLIENTS = 1000;
const JOBS_PER_CLIENT = 5;
const TOKENS = Array.from({ length: OWNERS }, (_, i) => `load-owner-${i}-token-${(i * 7919).toString(36)}Xq`);
/** How many connections are opened at once (the listen backlog is 511: no SYN is dropped and retried). */
const CONNECT_LANES = 100;
/** Heap after the load may exceed the idle heap by at most this. */
const HEAP_BOUND = 20 * MIB;

/** The answer a text must get: the classifier answers `quick …` itself, the reasoner streams `deep …`. */
function expectedAnswer(text: string): string {
  return text.startsWith('deep') ? `a b c ${text}` : `ok ${text}`;
}

interface LiveJob {
  client: JobClient;
  jobId: string;
  text: string;
}

/** Opens `count` clients, `CONNECT_LANES` at a time, the i-th as owner i mod OWNERS. */
async function connectAll(gateway: TunedGateway, count: number): Promise<JobClient[]> {
  const clients: JobClient[] = new Array(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      clients[index] = await JobClient.connect(gateway.wsUrl, TOKENS[index % OWNERS]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_LANES, count) }, lane));
  return clients;
}

/** The gateway's open WebSocket connections, as `/metrics` reports them. */
async function openConnections(gateway: TunedGateway): Promise<number> {
  return sampleValue(parsePrometheusText(await gateway.runtime.metrics.scrape()), 'switchboard_websocket_connections');
}

/** Closes every client and waits until each has seen its close and the gateway holds no connection and no job. */
async function closeAndSettle(gateway: TunedGateway, clients: JobClient[]): Promise<void> {
  for (const client of clients) client.close();
  await waitUntil(() => clients.every((client) => client.closed !== null), 30_000, 'every client closed');
  await waitUntil(async () => (await openConnections(gateway)) === 0, 30_000, 'no connection left on the gateway');
  await waitUntil(() => {
    const { jobs } = gateway.runtime.status();
    return jobs.active === 0 && jobs.pending === 0;
  }, 30_000, 'no job active or pending');
}

/** `heapUsed` after full collections, until two readings in a row agree within 1 MiB (at most 10 rounds). */
async function idleHeap(): Promise<number> {
  let last = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 10; round++) {
    collectGarbage();
    // Let finalizers and closed sockets' callbacks run, then collect what they released.
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    const heap = process.memoryUsage().heapUsed;
    if (Math.abs(heap - last) < MIB) return heap;
    last = heap;
  }
  return last;
}

/** Runs `clients` × `perClient` chats; returns every job with the client that sent it. */
async function runJobs(clients: JobClient[], perClient: number, tag: string): Promise<LiveJob[]> {
  const jobs = await Promise.all(
    clients.map(async (client, c) => {
      const texts = Array.from({ length: perClient }, (_, i) => `${(c + i) % 2 === 0 ? 'deep' : 'quick'} ${tag} ${c}-${i}`);
      return (await client.chatMany(texts, perClient)).map(({ jobId, text }) => ({ client, jobId, text }));
    }),
  );
  const all = jobs.flat();
  await Promise.all(all.map((job) => job.client.finished(job.jobId, 120_000)));
  return all;
}

const fmt = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;

describe('load: 1000 WebSocket clients × 5 jobs each', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    scriptModels(small, large, {
      classify: (text) => JSON.stringify(text.startsWith('deep') ? { action: 'route' } : { action: 'direct', response: `ok ${text}` }),
      reason: (text) => ({ content: ['a ', 'b ', 'c ', text] }),
    });
    gateway = await startTunedGateway({
      small,
      large,
      config: {
        auth: { tokens: TOKENS },
        limits: {
          connectionsPerOwner: CLIENTS / OWNERS + 10,
          pendingJobsPerOwner: (CLIENTS / OWNERS) * JOBS_PER_CLIENT + 100,
          // Fewer than the 5000 jobs: most wait in line and hear their place.
          maxActiveJobs: 128,
        },
      },
    });
  }, 30_000);

  afterAll(async () => {
    await gateway?.close();
    await small?.close();
    await large?.close();
  }, 60_000);

  it('gives every job exactly one terminal event and contiguous seqs, loses and duplicates nothing, and returns to idle memory', async () => {
    // Warm-up: a small round, so code compiled and caches filled on first use count as idle.
    {
      const warm = await connectAll(gateway, 20);
      await runJobs(warm, JOBS_PER_CLIENT, 'warm');
      await closeAndSettle(gateway, warm);
    }
    // The fakes record every request they get (test memory, not the gateway's): forgotten before each reading.
    const forgetRequests = (): void => {
      small.resetStats();
      large.resetStats();
    };
    forgetRequests();
    const heapBefore = await idleHeap();
    const started = performance.now();

    // Everything the load holds lives in this function: after it returns, only the gateway keeps anything.
    const figures = await (async () => {
      const clients = await connectAll(gateway, CLIENTS);
      expect(await openConnections(gateway)).toBe(CLIENTS);
      const connectedMs = performance.now() - started;
      const jobs = await runJobs(clients, JOBS_PER_CLIENT, 'load');
      const jobsMs = performance.now() - started - connectedMs;
      const heapPeak = process.memoryUsage().heapUsed;

      expect(jobs).toHaveLength(CLIENTS * JOBS_PER_CLIENT);
      expect(new Set(jobs.map((job) => job.jobId)).size).toBe(CLIENTS * JOBS_PER_CLIENT);
      let events = 0;
      let queued = 0;
      for (const job of jobs) {
        const seen = job.client.of(job.jobId);
        events += seen.length;
        if (seen.some((e) => e.event === 'queued')) queued += 1;
        expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => i + 1));
        expect(seen.filter(isTerminalEvent)).toHaveLength(1);
        expect(seen.at(-1)?.event, JSON.stringify(seen.at(-1))).toBe('done');
        expect(seen.filter((e) => e.event === 'ack')).toHaveLength(1);
        expect(job.client.answer(job.jobId)).toBe(expectedAnswer(job.text));
      }
      expect(queued).toBeGreaterThan(0);
      // A client hears of its own jobs only, and nothing went wrong on any connection.
      const byClient = new Map<JobClient, Set<string>>();
      for (const job of jobs) byClient.set(job.client, (byClient.get(job.client) ?? new Set()).add(job.jobId));
      for (const client of clients) {
        expect([...client.events.keys()].sort()).toEqual([...(byClient.get(client) ?? [])].sort());
        expect(client.others.filter((frame) => frame.type !== 'accepted')).toEqual([]);
        expect(client.closed).toBeNull();
      }
      expect(gateway.runtime.status().jobs).toEqual({ active: 0, pending: 0 });

      // Replay of every job from seq 0 (from the journal: they have ended) on its own client: the same
      // events, field by field, as the client saw live.
      const live = new Map<string, EventFrame[]>();
      for (const client of clients) {
        for (const [jobId, seen] of client.events) live.set(jobId, seen);
        client.events.clear();
      }
      const replayStarted = performance.now();
      await Promise.all(
        jobs.map((job) => {
          job.client.send({ type: 'subscribe', jobId: job.jobId, afterSeq: 0 });
          return job.client.finished(job.jobId, 60_000);
        }),
      );
      const replayMs = performance.now() - replayStarted;
      const strip = (list: EventFrame[]) => list.map(({ jobId, seq, event, data, at }) => ({ jobId, seq, event, data, at }));
      for (const job of jobs) {
        expect(strip(job.client.of(job.jobId)), job.jobId).toEqual(strip(live.get(job.jobId) ?? []));
      }
      for (const client of clients) expect(client.others.filter((frame) => frame.type !== 'accepted')).toEqual([]);

      await closeAndSettle(gateway, clients);
      return { connectedMs, jobsMs, replayMs, events, queued, heapPeak };
    })();

    forgetRequests();
    const heapAfter = await idleHeap();
    const totalMs = performance.now() - started;
    const store = process.env['TEST_DATABASE_URL'] ? 'PostgreSQL' : 'PGlite';
    console.info(
      `load (${store}): ${CLIENTS} clients × ${JOBS_PER_CLIENT} jobs (${OWNERS} owners) — connected in ${(figures.connectedMs / 1000).toFixed(1)} s, ` +
        `${CLIENTS * JOBS_PER_CLIENT} jobs done in ${(figures.jobsMs / 1000).toFixed(1)} s (${Math.round((CLIENTS * JOBS_PER_CLIENT) / (figures.jobsMs / 1000))} jobs/s), ` +
        `${figures.events} events, ${figures.queued} jobs queued, all replayed identically in ${(figures.replayMs / 1000).toFixed(1)} s; ` +
        `heapUsed idle ${fmt(heapBefore)}, at the end of the load ${fmt(figures.heapPeak)}, idle after ${fmt(heapAfter)} ` +
        `(${heapAfter >= heapBefore ? '+' : '−'}${fmt(Math.abs(heapAfter - heapBefore))}, bound +${fmt(HEAP_BOUND)}); ${(totalMs / 1000).toFixed(1)} s in all`,
    );
    expect(gateway.runtime.status().jobs).toEqual({ active: 0, pending: 0 });
    expect(await openConnections(gateway)).toBe(0);
    expect(heapAfter).toBeLessThanOrEqual(heapBefore + HEAP_BOUND);
  }, 240_000);
});
