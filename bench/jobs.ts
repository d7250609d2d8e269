import { randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createActor, fromCallback } from 'xstate';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import { openStore } from '../src/actors/store/open-store.js';
import type { Config } from '../src/config/config-schema.js';
import { parseConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/log.js';
import { jobMachine, type JobInput } from '../src/machines/job-machine.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import { BackendRegistry } from '../src/runtime/backend-registry.js';
import { createJobActors } from '../src/runtime/create-job-actors.js';
import { createJobToolkit } from '../src/runtime/create-job-toolkit.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import { createToolRunner } from '../src/runtime/create-tool-runner.js';
import { startGateway } from '../src/transport/start-gateway.js';
import { stats } from './harness.js';
import { startRelayFloor, type DurableWrites } from './relay-floor.js';

const log = createLogger({ level: 'silent' });

/** A config over the bench fake: both roles on one backend with enough slots, embedded database. */
export function benchConfig(baseUrl: string, dataDir: string, databaseUrl: string | null = null): Config {
  return parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    database: { url: databaseUrl, dataDir },
    backends: { fake: { baseUrl, model: 'bench', concurrency: 64, healthIntervalMs: 3_600_000 } },
    roles: { classifier: 'fake', reasoner: 'fake' },
    modes: { daily: 'fake' },
    // 100 bench connections share the anonymous owner.
    limits: { maxActiveJobs: 1_000, connectionsPerOwner: 1_000, pendingJobsPerOwner: 10_000 },
    persona: { name: 'Eid', locale: 'en' },
  });
}

/**
 * Runs `total` jobs keeping `concurrency` in flight; resolves with jobs per second. Each of the
 * `concurrency` workers runs its jobs one after another and passes its index to `one`.
 */
async function drive(total: number, concurrency: number, one: (worker: number) => Promise<void>): Promise<number> {
  let started = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async (_, worker) => {
      while (started < total) {
        started++;
        await one(worker);
      }
    }),
  );
  return total / ((performance.now() - t) / 1000);
}

/** A WebSocket client that runs chats to their terminal event, many at once. */
class BenchClient {
  private readonly waiting = new Map<string, (firstResultAt: number) => void>();
  private readonly accepted = new Map<string, (jobId: string) => void>();
  private readonly firstResult = new Map<string, number>();

  constructor(private readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      const frame = JSON.parse(String(raw)) as { type: string; jobId?: string; clientMsgId?: string; event?: string };
      if (frame.type === 'accepted' && frame.clientMsgId) {
        this.accepted.get(frame.clientMsgId)?.(String(frame.jobId));
        this.accepted.delete(frame.clientMsgId);
      } else if (frame.type === 'event' && frame.jobId) {
        if (frame.event === 'result' && !this.firstResult.has(frame.jobId)) this.firstResult.set(frame.jobId, performance.now());
        if (frame.event === 'done' || frame.event === 'error' || frame.event === 'cancelled') {
          const first = this.firstResult.get(frame.jobId) ?? NaN;
          this.firstResult.delete(frame.jobId);
          this.waiting.get(frame.jobId)?.(first);
          this.waiting.delete(frame.jobId);
        }
      } else if (frame.type === 'error') {
        throw new Error(`bench chat refused: ${JSON.stringify(frame)}`);
      }
    });
  }

  static async connect(url: string): Promise<BenchClient> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return new BenchClient(socket);
  }

  /**
   * Sends a chat; resolves, once it has finished, with when it was sent and when its first `result` event
   * came. The job is awaited from within the `accepted` frame's handler, not after an `await`, since its
   * terminal event can arrive in the same socket read as `accepted`.
   */
  chat(text: string): Promise<{ sentAt: number; firstResultAt: number }> {
    const clientMsgId = randomUUID();
    return new Promise((resolve) => {
      const sentAt = performance.now();
      this.accepted.set(clientMsgId, (jobId) => this.waiting.set(jobId, (firstResultAt) => resolve({ sentAt, firstResultAt })));
      this.socket.send(JSON.stringify({ type: 'chat', text, clientMsgId }));
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** What undici publishes on its `undici:request:*` diagnostics channels: at least the request. */
interface UndiciRequestMessage {
  request: { origin?: string | URL };
}

/**
 * The fake backend's own time per request, seen from this process through undici's diagnostics
 * channels: from our request having been sent (`undici:request:bodySent`) to its response having been
 * received in full (`undici:request:trailers`, published at the end of the body). Counts only requests
 * to the fake's origin, paired by the undici request object.
 */
class FakeRequestClock {
  private readonly origin: string;
  private readonly sentAt = new WeakMap<object, number>();
  private ended: Array<{ at: number; ms: number }> = [];

  private readonly onBodySent = (message: unknown): void => {
    const { request } = message as UndiciRequestMessage;
    if (request.origin !== undefined && new URL(String(request.origin)).origin === this.origin) this.sentAt.set(request, performance.now());
  };

  private readonly onTrailers = (message: unknown): void => {
    const at = performance.now();
    const { request } = message as UndiciRequestMessage;
    const sent = this.sentAt.get(request);
    if (sent === undefined) return;
    this.sentAt.delete(request);
    this.ended.push({ at, ms: at - sent });
  };

  constructor(baseUrl: string) {
    this.origin = new URL(baseUrl).origin;
    subscribe('undici:request:bodySent', this.onBodySent);
    subscribe('undici:request:trailers', this.onTrailers);
  }

  /** The summed time of the requests whose responses ended within `[from, to]`; forgets everything so far. */
  take(from: number, to: number): number {
    const ms = this.ended.reduce((sum, e) => (e.at >= from && e.at <= to ? sum + e.ms : sum), 0);
    this.ended = [];
    return ms;
  }

  stop(): void {
    unsubscribe('undici:request:bodySent', this.onBodySent);
    unsubscribe('undici:request:trailers', this.onTrailers);
  }
}

/**
 * `count` chats one at a time through `client`: for each, the time from sending it to its first `result`,
 * the fake's own time within it, and the difference — the overhead of whatever stands between.
 */
async function firstResultTimes(client: BenchClient, clock: FakeRequestClock, count: number): Promise<{ firstResult: number[]; fakePerJob: number[]; overheads: number[] }> {
  const firstResult: number[] = [];
  const fakePerJob: number[] = [];
  const overheads: number[] = [];
  for (let i = 0; i < count; i++) {
    const { sentAt, firstResultAt } = await client.chat('hello');
    const fakeMs = clock.take(sentAt, firstResultAt);
    firstResult.push(firstResultAt - sentAt);
    fakePerJob.push(fakeMs);
    overheads.push(firstResultAt - sentAt - fakeMs);
  }
  return { firstResult, fakePerJob, overheads };
}

/** Median and 99th percentile of a sample, in ms. */
export interface Spread {
  median: number;
  p99: number;
}

/** Jobs per second at each concurrency, and the latency of one chat to its first result with its parts. */
export interface JobsBenchResult {
  /** Per concurrency: jobs/s both ways, and how long each event waited from publish to commit (write-ahead). */
  levels: Array<{ concurrency: number; endToEnd: number; bare: number; writeAheadMs: Spread; durableFloor: number | null }>;
  /** The write-ahead wait per event during the one-at-a-time latency runs. */
  writeAheadSequentialMs: Spread;
  /** Median time from sending a `chat` frame to its first `result` event, one chat at a time. */
  firstResultMedianMs: number;
  /** Median of the fake backend's own time within those same chats (request sent → response received). */
  fakePerJobMedianMs: number;
  /** Median per chat of the time to the first result minus that chat's own fake time: our overhead. */
  overheadMedianMs: number;
  /** For scale: the median time of the fake answering back-to-back direct calls, kept hot. */
  fakeMedianMs: number;
  /** The same overhead, measured the same way, through the bare relay of `relay-floor.ts`: the floor. */
  relayFloorOverheadMedianMs: number;
  /** The same through the bare relay writing the message before `accepted` and each event before sending it, as we must. */
  durableRelayFloorOverheadMedianMs: number;
}

/**
 * Jobs per second end to end over WebSocket (direct branch, instant fake) against the bare job machine
 * driven in process with the same actors, at each concurrency; and the time from a `chat` frame to the
 * first `result` event, less the fake's own time for that same job's classifier call (measured inside
 * the job, where the fake has been idle between requests, rather than hot from back-to-back calls).
 */
export async function benchJobs(baseUrl: string, levels: number[] = [1, 100, 1000], databaseUrl: string | null = null): Promise<JobsBenchResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-jobs-'));
  const config = benchConfig(baseUrl, dataDir, databaseUrl);
  // Write-ahead: how long each event waits from publish to commit, the latency it adds before delivery.
  let commitWaits: number[] = [];
  const takeCommitWaits = (): Spread => {
    const { median, p99 } = stats(commitWaits);
    commitWaits = [];
    return { median, p99 };
  };
  const runtime = createRuntime(config, { log, onEventCommitted: (ms) => commitWaits.push(ms) });
  await runtime.start();
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, ws: { maxFramesPerSecond: 1_000_000 } });
  const wsUrl = `${gateway.url.replace(/^http/, 'ws')}/ws`;
  const clients = await Promise.all(Array.from({ length: 100 }, () => BenchClient.connect(wsUrl)));

  // The bare machine: the same actors over a second store and registry, no transport, supervisor or hub.
  const bareDir = mkdtempSync(join(tmpdir(), 'sb-bench-bare-'));
  const opened = await openStore({ url: databaseUrl, dataDir: bareDir }, { cleanupEveryMs: 0 });
  const backends = new BackendRegistry(config.backends, { log });
  backends.start();
  const prompts = await loadPrompts(undefined, config.persona);
  const messages = prompts.messages('en');
  const now = () => new Date();
  const actors = createJobActors({
    store: opened.store,
    backends,
    tools: createToolRunner({ store: opened.store, config, messages, now, log }),
    describeStatus: () => '',
    draftTtlMs: 60_000,
    historyMessages: 80,
    now,
  });
  const machine = jobMachine.provide({ actors, actions: { reportFinished: () => {} } });
  const sink = createActor(fromCallback(() => {})).start();
  const conversationId = randomUUID();
  const input: Omit<JobInput, 'jobId'> = {
    conversationId,
    text: 'hello',
    mode: 'auto',
    roles: config.roles,
    modeBackend: null,
    fallbackToClassifier: true,
    sink,
    toolkit: createJobToolkit({ config, prompts, now, reasonerTurns: 10 }),
    supervisor: sink,
  };
  const bareJob = () =>
    new Promise<void>((resolve) => {
      const actor = createActor(machine, { input: { ...input, jobId: randomUUID() } });
      actor.subscribe({ complete: () => resolve(), error: () => resolve() });
      actor.start();
    });

  // A worker keeps to one connection: each carries concurrency / 100 chats at a time.
  const endToEndJob = async (worker: number) => {
    await clients[worker % clients.length]!.chat('hello');
  };

  // Warm both paths.
  await drive(300, 50, bareJob);
  await drive(300, 50, endToEndJob);

  // Latency to the first result, one at a time on a quiet system, and within each chat the fake's own
  // time for its classifier call, the one backend request before the first result.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const clock = new FakeRequestClock(baseUrl);
  takeCommitWaits();
  const { firstResult, fakePerJob, overheads } = await firstResultTimes(clients[0]!, clock, 300);
  const writeAheadSequentialMs = takeCommitWaits();
  // The floors, measured the same way right after: the libraries and this machine without our system,
  // then the same with the user's message made durable (on the same kind of store) before `accepted`.
  const startFloor = async (durable?: DurableWrites) => {
    const relay = await startRelayFloor(baseUrl, prompts.systemPrompt('classifier'), durable);
    const client = await BenchClient.connect(relay.url);
    for (let i = 0; i < 50; i++) await client.chat('hello');
    return { client, close: async () => (client.close(), await relay.close()) };
  };
  const floorOverhead = async (floor: { client: BenchClient }): Promise<number> => {
    clock.take(0, Infinity);
    const { overheads: relayOverheads } = await firstResultTimes(floor.client, clock, 300);
    return stats(relayOverheads).median;
  };
  const bareFloor = await startFloor();
  const relayFloorOverheadMedianMs = await floorOverhead(bareFloor);
  await bareFloor.close();
  const durableFloor = await startFloor({
    accept: (jobId, text) => opened.store.acceptJob({ jobId, conversationId: randomUUID(), source: 'ws', mode: 'auto', owner: 'anonymous', text, newConversation: true }),
    event: (jobId, seq, event, data) => opened.store.journal.append(jobId, { seq, event, data, at: new Date().toISOString() }),
  });
  const durableRelayFloorOverheadMedianMs = await floorOverhead(durableFloor);
  clock.stop();
  const results: JobsBenchResult['levels'] = [];
  for (const concurrency of levels) {
    const total = concurrency === 1 ? 300 : 2_000;
    const bare = await drive(total, concurrency, bareJob);
    takeCommitWaits();
    const endToEnd = await drive(total, concurrency, endToEndJob);
    const writeAheadMs = takeCommitWaits();
    // One chat at a time, the floor's own jobs/s: what any gateway that keeps the contract can do here.
    const durableFloorJobs = concurrency === 1 ? await drive(total, 1, () => durableFloor.client.chat('hello').then(() => undefined)) : null;
    results.push({ concurrency, endToEnd, bare, writeAheadMs, durableFloor: durableFloorJobs });
  }

  const fakeTimes: number[] = [];
  const direct = createOpenAIClient({ baseUrl, model: 'bench' });
  const request = { messages: [{ role: 'system' as const, content: prompts.systemPrompt('classifier') }, { role: 'user' as const, content: '[now]\nx\n\n[message]\nhello' }] };
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await direct.complete(request, new AbortController().signal);
    fakeTimes.push(performance.now() - t);
  }

  await durableFloor.close();
  for (const c of clients) c.close();
  sink.stop();
  backends.stop();
  await opened.close();
  await gateway.close();
  await runtime.stop(0);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(bareDir, { recursive: true, force: true });
  return {
    levels: results,
    writeAheadSequentialMs,
    firstResultMedianMs: stats(firstResult).median,
    fakePerJobMedianMs: stats(fakePerJob).median,
    overheadMedianMs: stats(overheads).median,
    fakeMedianMs: stats(fakeTimes).median,
    relayFloorOverheadMedianMs,
    durableRelayFloorOverheadMedianMs,
  };
}
