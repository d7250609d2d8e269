/**
 * The store failing is an answer, not a hang. The gateway (in process: the real runtime, HTTP and
 * WebSocket, over fake model servers that stream slowly) runs on a PostgreSQL server of its own, which
 * is paused (SIGSTOP) for 15 s and later stopped for 10 s while jobs stream. While the store is out:
 * `ping` is answered at once; the jobs that were running end with `error`/`store_unavailable` (never
 * `done`); a chat ends with a clear reason within the store's timeouts; `/healthz` says 503
 * `store_unavailable`. Once the server is back — without restarting the gateway — chats complete,
 * `/healthz` is 200, no job is left `running`, every `done` has its answer stored, and every job's
 * journal is gap-free and says exactly what its client saw, ending with the same terminal event at the
 * same seq.
 *
 * The shared CI server (TEST_DATABASE_URL) is never touched: other test files use it concurrently.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type EventFrame, type Frame, type TestGateway } from './helpers/gateway.js';
import { startPostgresCluster, type PostgresCluster } from './helpers/postgres-cluster.js';
import { describeOnOwnCluster } from './helpers/describe-on-own-cluster.js';
import { lastUserText, scriptModels } from './helpers/scripted-models.js';

const STATEMENT_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** How long each fault lasts: what the issue asks for, not a margin. */
const PAUSE_MS = 15_000;
const STOP_MS = 10_000;

/** Jobs streaming when a fault begins (several users at once, as in production). */
const STREAMING_JOBS = 8;
/** The classifier answers a `slow` message after this: its job is between events when a fault begins. */
const SLOW_CLASSIFY_MS = 6_000;

/** A pong must follow its ping within this, at any time. */
const PONG_WITHIN_MS = 1_000;
/** `/healthz` gives up on the store after 1 s (store.ping); its 503 must come soon after. */
const HEALTH_WITHIN_MS = 1_000 + 1_000;
/**
 * A streaming job's next event fails when its write times out: the write in flight when the fault began
 * times out first (one statement timeout), then the batch holding the events that queued meanwhile (a
 * second). Its `error` is delivered at once then.
 */
const STREAMING_JOB_ENDS_WITHIN_MS = 2 * STATEMENT_TIMEOUT_MS + 1_500;
/**
 * A chat sent during an outage: its first statement (the clientMsgId lookup, or its accept write) may
 * wait for the write in flight to time out, then times out itself (or fails to connect).
 */
const CHAT_ENDS_WITHIN_MS = 2 * STATEMENT_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 1_000;
/** A job between events: its next event comes when its classifier answers, then fails like a chat's write. */
const WAITING_JOB_ENDS_WITHIN_MS = SLOW_CLASSIFY_MS + CHAT_ENDS_WITHIN_MS;
/** After the server is back: how long repairs (retried with backoff of up to 5 s) may take to land. */
const REPAIRED_WITHIN_MS = 20_000;

const TERMINAL = ['done', 'error', 'cancelled'];
const isTerminalFrame = (f: Frame, jobId: string) => f.type === 'event' && f['jobId'] === jobId && TERMINAL.includes(String(f['event']));
/** An event as the journal keeps it. */
const journaled = (events: EventFrame[]) => events.map(({ seq, event, data }) => ({ seq, event, data }));

/** How a chat sent during a fault ended, by the time the fault was over. */
interface ChatAttempt {
  label: string;
  clientMsgId: string | undefined;
  /** `refused`: an error frame; `failed`: accepted, then its job ended with an error event; `no_answer`: nothing by its deadline. */
  outcome: 'refused' | 'failed' | 'done' | 'cancelled' | 'no_answer';
  /** The error frame's code, or the error event's reason. */
  reason: string | undefined;
  elapsedMs: number;
}

/** A job that was running when a fault began. */
interface JobDuringFault {
  client: TestClient;
  jobId: string;
  text: string;
  /** Ms after the fault began that its terminal event came; null when none came while the fault lasted. */
  endedAfterMs: number | null;
  /** What its client had seen when the fault was over. */
  events: EventFrame[];
}

/** What happened while the store was out. */
interface FaultReport {
  pongMs: number[];
  pingsSent: number;
  unanswered: number;
  /** The jobs streaming when the fault began. */
  streaming: JobDuringFault[];
  /** A job accepted before the fault, waiting for its classifier when it began. */
  waiting: JobDuringFault;
  chats: ChatAttempt[];
  health: Array<{ status: number; body: unknown; elapsedMs: number; atMs: number }>;
}

describeOnOwnCluster('the store failing is an answer, not a hang (PostgreSQL paused 15 s, then stopped 10 s)', () => {
  let cluster: PostgresCluster | undefined;
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TestGateway | undefined;
  /** Pings, chats with a clientMsgId, the waiting job. */
  let main: TestClient;
  /** Every client, for the jobs they were told of. */
  const clients: TestClient[] = [];
  let attempts = 0;

  const connect = async (): Promise<TestClient> => {
    const client = await TestClient.connect(gateway!.wsUrl);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    cluster = await startPostgresCluster();
    small = await startFakeBackend();
    large = await startFakeBackend();
    scriptModels(small, large, {
      classify: (text) => ({ content: JSON.stringify({ action: 'route' }), headersDelayMs: text.startsWith('slow') ? SLOW_CLASSIFY_MS : 0 }),
      // A long answer drips for about 8 s: it is mid-stream when a fault hits. Anything else is short.
      reason: (text) =>
        text.startsWith('long')
          ? { content: Array.from({ length: 160 }, (_, i) => `w${i} `), chunkDelayMs: 50 }
          : { content: ['short ', 'answer ', 'to ', text] },
    });
    const backend = (fake: FakeBackend) => ({
      baseUrl: fake.baseUrl,
      model: 'fake-model',
      // Every streaming job at once, and the slow classification beside the others.
      concurrency: STREAMING_JOBS + 4,
      timeoutMs: 10_000,
      streamDeadlineMs: 15_000,
      idleTimeoutMs: 5_000,
      connectTimeoutMs: 1_000,
      healthIntervalMs: 60_000,
    });
    gateway = await startTestGateway({
      classifier: small,
      reasoner: large,
      config: {
        backends: { small: backend(small), large: backend(large) },
        database: { url: cluster.url, dataDir: 'unused', statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS },
      },
      // A job waiting for its classifier emits nothing until it answers (no `processing` heartbeat), so
      // its first event during a fault comes at a known time.
      deps: { delays: { classifyHeartbeat: 60_000 } },
    });
    main = await connect();
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    // The server may still be paused or stopped if a test failed half-way: bring it back so the gateway
    // can flush, then throw the cluster away.
    await cluster?.resume().catch(() => undefined);
    await cluster?.start().catch(() => undefined);
    await gateway?.close();
    await cluster?.destroy();
    await small?.close();
    await large?.close();
  }, 60_000);

  // ─── Probes ─────────────────────────────────────────────────────────────────────────────────────

  const healthz = async (timeoutMs = 10_000): Promise<{ status: number; body: unknown; elapsedMs: number }> => {
    const started = Date.now();
    const response = await request(`${gateway!.url}/healthz`, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const body: unknown = await response.body.json();
    return { status: response.statusCode, body, elapsedMs: Date.now() - started };
  };

  /**
   * Sends a chat and waits until `deadlineAt` for how it ends: an error frame, or its job's terminal
   * event. `clientMsgId`: a string, or true for a fresh one, or false for none (then `client` must have
   * no other chat in flight: its error frame would name no chat).
   */
  const attemptChat = async (client: TestClient, label: string, clientMsgId: string | boolean, deadlineAt: number): Promise<ChatAttempt> => {
    const id = typeof clientMsgId === 'string' ? clientMsgId : clientMsgId ? `outage-${++attempts}` : undefined;
    const from = client.frames.length;
    const sentAt = Date.now();
    const attempt = (outcome: ChatAttempt['outcome'], reason?: string): ChatAttempt => ({
      label,
      clientMsgId: id,
      outcome,
      reason,
      elapsedMs: Date.now() - sentAt,
    });
    client.send({ type: 'chat', text: `${label} question`, ...(id === undefined ? {} : { clientMsgId: id }) });
    let reply: Frame;
    try {
      reply = await client.waitFor((f) => (f.type === 'accepted' || f.type === 'error') && f['clientMsgId'] === id, deadlineAt - Date.now(), from);
    } catch {
      return attempt('no_answer');
    }
    if (reply.type === 'error') return attempt('refused', String(reply['code']));
    const jobId = String(reply['jobId']);
    let terminal: Frame;
    try {
      terminal = await client.waitFor((f) => isTerminalFrame(f, jobId), deadlineAt - Date.now(), from);
    } catch {
      return attempt('no_answer');
    }
    const event = String(terminal['event']);
    if (event === 'done' || event === 'cancelled') return attempt(event);
    return attempt('failed', String((terminal['data'] as Record<string, unknown>)['reason']));
  };

  /** Pings `client` every `everyMs` and times each pong (a connection answers its pings in order). */
  const startPinger = (client: TestClient, everyMs: number) => {
    const outstanding: number[] = [];
    const pongMs: number[] = [];
    let sent = 0;
    const onMessage = (data: unknown): void => {
      if ((JSON.parse(String(data)) as Frame).type !== 'pong') return;
      const at = outstanding.shift();
      if (at !== undefined) pongMs.push(Date.now() - at);
    };
    client.socket.on('message', onMessage);
    const timer = setInterval(() => {
      outstanding.push(Date.now());
      sent++;
      client.send({ type: 'ping' });
    }, everyMs);
    let stopped: Promise<{ pongMs: number[]; pingsSent: number; unanswered: number }> | undefined;
    return {
      stop: () =>
        (stopped ??= (async () => {
          clearInterval(timer);
          const deadline = Date.now() + PONG_WITHIN_MS;
          while (outstanding.length > 0 && Date.now() < deadline) await sleep(20);
          client.socket.off('message', onMessage);
          return { pongMs, pingsSent: sent, unanswered: outstanding.length };
        })()),
    };
  };

  /**
   * Starts {@link STREAMING_JOBS} long jobs (one client each) and a slow one, waits until the long ones
   * stream, begins the fault and, for `durationMs` from its beginning, pings, sends chats and asks
   * `/healthz`; then ends the fault. Nothing waits past the fault's end: what had not ended by then is
   * reported so.
   */
  const throughFault = async (options: {
    name: string;
    durationMs: number;
    begin: () => Promise<void>;
    end: () => Promise<void>;
    /** When (ms after the fault began) to send a chat with a clientMsgId and one without, together. */
    chatsAt: number[];
    /** When (ms after the fault began) to ask `/healthz`. */
    healthAt: number[];
  }): Promise<FaultReport> => {
    const streaming = await Promise.all(
      Array.from({ length: STREAMING_JOBS }, async (_, i) => {
        const client = await connect();
        const text = `long story ${i} before the ${options.name}`;
        const { jobId } = await client.chat(text);
        await client.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && f['event'] === 'result', 10_000);
        return { client, jobId, text };
      }),
    );
    const slowText = `slow question before the ${options.name}`;
    const slow = { client: main, jobId: (await main.chat(slowText)).jobId, text: slowText };
    // One fresh client per chat without a clientMsgId (an error frame without one names no chat).
    const plainClients = await Promise.all(options.chatsAt.map(() => connect()));

    const pinger = startPinger(main, 200);
    const beganAt = Date.now();
    const endsAt = beganAt + options.durationMs;
    let began = false;
    try {
      await options.begin();
      began = true;
      const ending = async (job: { client: TestClient; jobId: string; text: string }): Promise<JobDuringFault> => {
        let endedAfterMs: number | null = null;
        try {
          await job.client.finished(job.jobId, endsAt - Date.now());
          endedAfterMs = Date.now() - beganAt;
        } catch {
          // Not ended while the fault lasted: reported as such.
        }
        return { ...job, endedAfterMs, events: job.client.events(job.jobId) };
      };
      const chats = Promise.all(
        options.chatsAt.map(async (at, index) => {
          await sleep(Math.max(0, beganAt + at - Date.now()));
          // One with a clientMsgId (looked up first), one without (straight to the accept write).
          return Promise.all([
            attemptChat(main, `${options.name}-${index}-id`, true, endsAt),
            attemptChat(plainClients[index]!, `${options.name}-${index}-plain`, false, endsAt),
          ]);
        }),
      );
      const health = Promise.all(
        options.healthAt.map(async (at) => {
          await sleep(Math.max(0, beganAt + at - Date.now()));
          // undici reads a timeout of 0 as none.
          return { ...(await healthz(Math.max(1, endsAt - Date.now()))), atMs: Date.now() - beganAt };
        }),
      );
      const [streamed, waiting, chatted, asked] = await Promise.all([Promise.all(streaming.map(ending)), ending(slow), chats, health]);
      // The fault lasts its full duration, whatever the gateway did meanwhile.
      await sleep(Math.max(0, endsAt - Date.now()));
      return { streaming: streamed, waiting, chats: chatted.flat(), health: asked, ...(await pinger.stop()) };
    } finally {
      await pinger.stop();
      if (began) await options.end();
    }
  };

  // ─── Checks ─────────────────────────────────────────────────────────────────────────────────────

  /** Every job every client was told of, with its client. */
  const seenJobs = () => {
    const jobs = new Map<string, TestClient>();
    for (const client of clients) for (const frame of client.frames) if (frame.type === 'accepted') jobs.set(String(frame['jobId']), client);
    return jobs;
  };

  /** Back without a restart: healthy, chats complete; a refused chat sent again with its clientMsgId works. */
  const checkRecovered = async (report: FaultReport): Promise<void> => {
    await vi.waitFor(async () => expect(await healthz()).toMatchObject({ status: 200, body: { ok: true } }), { timeout: 10_000, interval: 200 });
    const fresh = await main.chat('a question after the outage');
    expect((await main.finished(fresh.jobId)).at(-1)?.event).toBe('done');
    expect(main.answer(fresh.jobId)).toBe('short answer to a question after the outage');
    const plain = await connect();
    expect(await attemptChat(plain, 'plain after the outage', false, Date.now() + 10_000)).toMatchObject({ outcome: 'done' });
    // "Send it again shortly": a refused chat's clientMsgId is free, since nothing of it was kept.
    const refused = report.chats.find((chat) => chat.outcome === 'refused' && chat.clientMsgId !== undefined);
    if (refused !== undefined) {
      expect(await attemptChat(main, 'sent again', refused.clientMsgId!, Date.now() + 10_000)).toMatchObject({ outcome: 'done' });
    }
    await vi.waitFor(() => expect(gateway!.runtime.status().jobs).toEqual({ active: 0, pending: 0 }), { timeout: 10_000 });
  };

  /**
   * The store agrees with the clients: no job running, only jobs a client was told of, each journal
   * exactly what its client saw (gap-free, one terminal event, last), answers stored for `done` only.
   */
  const checkStore = async (): Promise<void> => {
    await vi.waitFor(
      async () => {
        const seen = seenJobs();
        for (const [jobId, client] of seen) {
          expect(client.events(jobId).filter((e) => TERMINAL.includes(e.event)), `the client of ${jobId} saw its end`).toHaveLength(1);
        }
        const db = new pg.Client({ connectionString: cluster!.url });
        await db.connect();
        try {
          const jobs = (await db.query<{ id: string; status: string; reason: string | null }>('select id, status, reason from jobs')).rows;
          const events = (
            await db.query<{ job_id: string; seq: number; event: string; data: Record<string, unknown> }>(
              'select job_id, seq, event, data from job_events order by job_id, seq',
            )
          ).rows;
          const answers = (await db.query<{ job_id: string; content: string }>("select job_id, content from messages where role = 'assistant'")).rows;

          expect(jobs.filter((job) => job.status === 'running'), 'no job is left running').toEqual([]);
          // Accepts reported failed (which may have committed after their timeout) left nothing behind.
          expect(jobs.map((job) => job.id).sort(), 'the stored jobs are the accepted ones').toEqual([...seen.keys()].sort());
          expect([...new Set(events.map((e) => e.job_id))].filter((id) => !seen.has(id)), 'journals of jobs nobody was told of').toEqual([]);

          for (const [jobId, client] of seen) {
            const saw = client.events(jobId);
            const terminal = saw.at(-1)!;
            const journal = events.filter((e) => e.job_id === jobId).map(({ seq, event, data }) => ({ seq, event, data }));
            // Seq 1..n, ending with the same terminal event at the same seq: exactly what the client saw.
            expect(journal, `journal of ${jobId}`).toEqual(journaled(saw));
            const row = jobs.find((job) => job.id === jobId);
            const stored = answers.filter((a) => a.job_id === jobId).map((a) => a.content);
            if (terminal.event === 'done') {
              expect(row, `job ${jobId}`).toMatchObject({ status: 'done' });
              // No `done` without its answer stored.
              expect(stored, `answer of ${jobId}`).toEqual([client.answer(jobId)]);
            } else {
              expect(row, `job ${jobId}`).toMatchObject({ status: terminal.event, reason: terminal.data['reason'] ?? null });
              expect(stored, `no answer kept for ${jobId}, which ended with ${terminal.event}`).toEqual([]);
            }
          }
        } finally {
          await db.end();
        }
      },
      { timeout: REPAIRED_WITHIN_MS, interval: 500 },
    );
  };

  /**
   * The jobs that ended during the fault were stopped (their model calls aborted), and a client that
   * subscribes to them now replays exactly what their client saw.
   */
  const checkReplays = async (report: FaultReport): Promise<void> => {
    for (const job of report.streaming) {
      const call = large.chatRequests.find((r) => r.body !== null && lastUserText(r.body) === job.text);
      expect(call, `the model call of "${job.text}"`).toBeDefined();
      await vi.waitFor(() => expect(call!.clientAborted, `the model call of "${job.text}" is aborted`).toBe(true), { timeout: 5_000 });
    }
    const late = await TestClient.connect(gateway!.wsUrl);
    try {
      for (const job of [...report.streaming, report.waiting]) {
        late.send({ type: 'subscribe', jobId: job.jobId, afterSeq: 0 });
        await late.finished(job.jobId, 10_000);
        expect(journaled(late.events(job.jobId)), `replay of "${job.text}"`).toEqual(journaled(job.client.events(job.jobId)));
      }
    } finally {
      late.close();
    }
  };

  // ─── The scenario ────────────────────────────────────────────────────────────────────────────────

  it('answers before any fault', async () => {
    const { jobId } = await main.chat('a question before the outage');
    expect((await main.finished(jobId)).at(-1)?.event).toBe('done');
    expect(await healthz()).toMatchObject({ status: 200, body: { ok: true } });
  });

  const faultScenario = (title: string, options: Parameters<typeof throughFault>[0]) =>
    describe(title, () => {
      let report: FaultReport | undefined;
      const ran = (): FaultReport => {
        if (report === undefined) throw new Error(`the ${options.name} did not run`);
        return report;
      };

      it(`lasts ${options.durationMs / 1000} s while ${STREAMING_JOBS} jobs stream`, async () => {
        report = await throughFault(options);
      }, options.durationMs + 30_000);

      it(`answers every ping within ${PONG_WITHIN_MS} ms throughout`, () => {
        const { pongMs, pingsSent, unanswered } = ran();
        expect(unanswered).toBe(0);
        // One every 200 ms: a blocked event loop would have sent fewer.
        expect(pingsSent).toBeGreaterThan((options.durationMs / 200) * 0.8);
        expect(Math.max(...pongMs)).toBeLessThan(PONG_WITHIN_MS);
      });

      it('ends every running job with error/store_unavailable, never done, within the timeouts', () => {
        const { streaming, waiting } = ran();
        const jobs = [...streaming.map((job) => ({ job, within: STREAMING_JOB_ENDS_WITHIN_MS })), { job: waiting, within: WAITING_JOB_ENDS_WITHIN_MS }];
        // Every job's events as its client saw them by the end of the fault, listed when they fall short.
        const wrong = jobs
          .filter(({ job, within }) => {
            const { events } = job;
            const gapFree = events.every((e, i) => e.seq === i + 1);
            const terminals = events.filter((e) => TERMINAL.includes(e.event));
            const last = events.at(-1);
            return !(
              gapFree &&
              terminals.length === 1 &&
              last?.event === 'error' &&
              last.data['reason'] === 'store_unavailable' &&
              job.endedAfterMs !== null &&
              job.endedAfterMs < within
            );
          })
          .map(({ job, within }) => ({
            job: job.text,
            endedAfterMs: job.endedAfterMs,
            allowedMs: within,
            events: job.events.map((e) => `${e.seq}:${e.event}${e.event === 'error' ? `/${String(e.data['reason'])}` : ''}`),
          }));
        expect(wrong, 'jobs that did not end with error/store_unavailable in time').toEqual([]);
        for (const job of streaming) expect(job.events.some((e) => e.event === 'result'), `"${job.text}" was mid-stream`).toBe(true);
      });

      it(`ends every chat sent meanwhile with store_unavailable within ${CHAT_ENDS_WITHIN_MS} ms`, () => {
        const { chats } = ran();
        expect(chats.length).toBe(options.chatsAt.length * 2);
        const wrong = chats.filter(
          (chat) => !(['refused', 'failed'].includes(chat.outcome) && chat.reason === 'store_unavailable' && chat.elapsedMs < CHAT_ENDS_WITHIN_MS),
        );
        expect(wrong, 'chats that did not end with store_unavailable in time').toEqual([]);
      });

      it('answers /healthz with 503 store_unavailable', () => {
        for (const answer of ran().health) {
          expect(answer).toMatchObject({ status: 503, body: { ok: false, reason: 'store_unavailable' } });
          expect(answer.elapsedMs).toBeLessThan(HEALTH_WITHIN_MS);
        }
      });

      it('recovers without a restart: /healthz 200, chats complete, a refused chat can be sent again', async () => {
        await checkRecovered(ran());
      }, 40_000);

      it('leaves the store as the clients saw it: nothing running, no gap, the answer of every done job', async () => {
        await checkStore();
        await checkReplays(ran());
      }, 40_000);
    });

  faultScenario('PostgreSQL paused (SIGSTOP) for 15 s mid-job', {
    name: 'pause',
    durationMs: PAUSE_MS,
    begin: () => cluster!.pause(),
    end: () => cluster!.resume(),
    // Each chat must have its whole allowance before the fault ends.
    chatsAt: [300, 4_500, PAUSE_MS - CHAT_ENDS_WITHIN_MS],
    healthAt: [1_500, 7_000, 12_000],
  });

  faultScenario('PostgreSQL stopped (pg_ctl stop -m fast) for 10 s mid-job', {
    name: 'stop',
    durationMs: STOP_MS,
    begin: () => cluster!.stop(),
    end: () => cluster!.start(),
    chatsAt: [300, STOP_MS - CHAT_ENDS_WITHIN_MS],
    healthAt: [1_000, 6_000],
  });
});
