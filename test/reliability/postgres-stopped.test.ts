/**
 * Reliability suite, store outage under load (issue 14, item 2): PostgreSQL stopped for 10 s mid-run and
 * started again, while clients keep chatting on two doors.
 *
 * A gateway in process (the real runtime, HTTP and WebSocket) runs on a PostgreSQL cluster of its own.
 * 20 WebSocket clients of four owners (tokens) and four OpenAI API clients of two owners (the official
 * `openai` client, streamed and not) each run a loop — send, wait for the end, send the next — from before
 * the stop, through a 10 s `pg_ctl stop -m fast`, until each has had answers after the restart. A chat
 * refused with `store_unavailable` is sent again with the same `clientMsgId`, as docs/websocket.md says.
 * Then:
 * - every job a WebSocket client saw `accepted` ended with exactly one terminal event, last, seqs 1..n:
 *   `done` with its expected answer, or `error` with a reason in {@link ALLOWED_REASONS}; each within a
 *   bound derived from the store's timeouts, and every job sent after the restart `done`;
 * - a refused chat got `store_unavailable` and nothing else, only while the store was out;
 * - every API request got an HTTP answer (never a dropped connection): 200 with its answer, or 503
 *   `store_unavailable` as JSON; after the restart 200;
 * - once the writer's repairs have landed, the store holds every accepted message in its client's
 *   conversation, the jobs nobody was told of are gone, no job is `running`, each journal is exactly what
 *   its client saw and each `done` has its answer stored; a `subscribe {afterSeq: 0}` on a fresh
 *   connection replays every job exactly (seq, event, data, time);
 * - no promise rejection went unhandled and the gateway (never restarted) answers `/healthz` 200.
 *
 * test/store-outage.test.ts (in `npm test`) covers the single-job details: pause and stop, pings, the
 * `/healthz` 503, one chat at a time. The shared CI server (TEST_DATABASE_URL) is never touched.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type EventFrame, type Frame, type TestGateway } from '../helpers/gateway.js';
import { startPostgresCluster, type PostgresCluster } from '../helpers/postgres-cluster.js';
import { describeOnOwnCluster } from '../helpers/describe-on-own-cluster.js';
import { ReplayChecker, until } from '../helpers/replay-checker.js';
import { scriptModels } from '../helpers/scripted-models.js';
import { backendDefaults } from '../helpers/tuned-gateway.js';
import { watchUnhandledRejections } from './helpers/fault-matrix.js';

const STATEMENT_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** How long the server stays stopped: what the issue asks for, not a margin. */
const STOP_MS = 10_000;

const WS_OWNERS = 4;
const WS_CLIENTS_PER_OWNER = 5;
const API_OWNERS = 2;
const API_CLIENTS_PER_OWNER = 2;
/** Answers each client must have had since the restart before the load stops. */
const DONE_AFTER_RESTART = 3;
/** Jobs each WebSocket client must have seen `done` before the stop. */
const DONE_BEFORE_STOP = 2;
/** Jobs mid-answer (a `result` seen, no end yet) when the stop begins. */
const STREAMING_AT_STOP = 8;
/**
 * A client sends at most one chat or request per this. It keeps a client that is refused at once (no
 * server to connect to) from spinning, and a WebSocket client within its 20 frames a second.
 */
const PACE_MS = 250;

/** The reasoner streams this many pieces, this far apart: an answer takes about 0.3 s. */
const PIECES = 12;
const PIECE_DELAY_MS = 25;

/** The only `error` reason a job may end with here: the fakes answer, so only the store can fail. */
const ALLOWED_REASONS = ['store_unavailable'];
/**
 * An answer takes about 0.3 s; on this 2-core machine, shared with other test runs (load average 9 seen),
 * up to 4 s were measured for the first ones, when 24 clients start at once on a cold gateway.
 */
const ANSWER_WITHIN_MS = 5_000;
/**
 * The longest a job may take from its chat to its end: its answer plus what a write can wait in an
 * outage — the batch in flight when the server went away fails (at worst by its statement timeout), then
 * the batch holding this job's event fails to connect or times out too (store-outage.test.ts reasons the
 * same), then the `error` is delivered at once.
 */
const JOB_ENDS_WITHIN_MS = ANSWER_WITHIN_MS + 2 * STATEMENT_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 1_500;
/** A chat's `accepted` or its refusal: the accept write, bounded the same way. */
const REPLY_WITHIN_MS = 2 * STATEMENT_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 1_500;
/** Past this a reply or an end counts as never coming (a hang), and the client stops there. */
const HANG_MS = 30_000;
/** After the restart: how long the writer's repairs (retried with backoff of up to 5 s) may take to land. */
const REPAIRED_WITHIN_MS = 20_000;

const TERMINAL = new Set(['done', 'error', 'cancelled']);
const wsToken = (owner: number) => `pg-stop-ws-owner-${owner}`;
const apiToken = (owner: number) => `pg-stop-api-owner-${owner}`;

/** When the chat or request was sent, against the outage. */
type Phase = 'before' | 'during' | 'after';
const PHASES: Phase[] = ['before', 'during', 'after'];

/** The outage's two moments; Infinity until they happen. */
const timeline = { stopBeganAt: Number.POSITIVE_INFINITY, restartedAt: Number.POSITIVE_INFINITY };
const phaseOf = (at: number): Phase => (at < timeline.stopBeganAt ? 'before' : at < timeline.restartedAt ? 'during' : 'after');

/** What the reasoner streams for `text`, and so the answer of a routed message. */
const reasonerPieces = (text: string) => Array.from({ length: PIECES }, (_, i) => `${text}:${i} `);
/** Every third WebSocket message is answered by the classifier, the rest streamed by the reasoner. */
const expectedAnswer = (text: string) => (text.startsWith('quick') ? `answer to ${text}` : reasonerPieces(text).join(''));

/** Resolves with the promise's value, or undefined when it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits so that a client's sends are at least {@link PACE_MS} apart; returns the new send time. */
async function paced(lastSentAt: number): Promise<number> {
  const wait = lastSentAt + PACE_MS - Date.now();
  if (wait > 0) await sleep(wait);
  return Date.now();
}

/** A job a WebSocket client was told of. */
interface WsJob {
  client: WsLoadClient;
  jobId: string;
  conversationId: string;
  clientMsgId: string;
  text: string;
  sentAt: number;
  phase: Phase;
  /** Ms from its chat to its terminal event; null when none came within {@link HANG_MS}. */
  endedAfterMs: number | null;
}

/** A chat answered with an `error` frame. */
interface Refusal {
  client: string;
  clientMsgId: string;
  code: string;
  phase: Phase;
  elapsedMs: number;
}

/** One WebSocket client's loop: a chat, its end, the next; a refused chat again with its clientMsgId. */
class WsLoadClient {
  readonly jobs: WsJob[] = [];
  readonly refusals: Refusal[] = [];
  /** Chats that got neither `accepted` nor an error within {@link HANG_MS}. */
  readonly unanswered: string[] = [];
  /** Error frames that answered no chat. */
  readonly stray: Frame[] = [];
  conversationId: string | undefined;
  private readonly replies = new Map<string, (frame: Frame) => void>();
  private readonly ended = new Set<string>();
  private readonly endWaiters = new Map<string, () => void>();

  private constructor(
    readonly name: string,
    readonly owner: number,
    readonly socket: TestClient,
  ) {
    socket.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      const clientMsgId = typeof frame['clientMsgId'] === 'string' ? frame['clientMsgId'] : undefined;
      if ((frame.type === 'accepted' || frame.type === 'error') && clientMsgId !== undefined && this.replies.has(clientMsgId)) {
        this.replies.get(clientMsgId)!(frame);
        this.replies.delete(clientMsgId);
      } else if (frame.type === 'error') this.stray.push(frame);
      if (frame.type === 'event' && TERMINAL.has(String(frame['event']))) {
        const jobId = String(frame['jobId']);
        this.ended.add(jobId);
        this.endWaiters.get(jobId)?.();
      }
    });
  }

  static async connect(wsUrl: string, name: string, owner: number): Promise<WsLoadClient> {
    return new WsLoadClient(name, owner, await TestClient.connect(wsUrl, { Authorization: `Bearer ${wsToken(owner)}` }));
  }

  /** Every event of a job this client saw. */
  events(jobId: string): EventFrame[] {
    return this.socket.events(jobId);
  }

  /** Chats until `more()` says stop (finishing the chat under way), or until one of its chats hangs. */
  async run(more: () => boolean): Promise<void> {
    let lastSentAt = 0;
    for (let k = 0; more(); k++) {
      const text = `${k % 3 === 0 ? 'quick' : 'story'} ${this.name} m${k}`;
      const clientMsgId = `${this.name}-m${k}`;
      for (;;) {
        lastSentAt = await paced(lastSentAt);
        const outcome = await this.chat(text, clientMsgId, lastSentAt);
        if (outcome === 'hung') return;
        // Sent again with the same clientMsgId until taken; a refusal once the load stops is left there.
        if (outcome === 'accepted' || !more()) break;
      }
    }
  }

  private async chat(text: string, clientMsgId: string, sentAt: number): Promise<'accepted' | 'refused' | 'hung'> {
    const reply = new Promise<Frame>((resolve) => this.replies.set(clientMsgId, resolve));
    this.socket.send({ type: 'chat', text, clientMsgId, ...(this.conversationId === undefined ? {} : { conversationId: this.conversationId }) });
    const frame = await within(reply, HANG_MS);
    if (frame === undefined) {
      this.unanswered.push(clientMsgId);
      return 'hung';
    }
    if (frame.type === 'error') {
      this.refusals.push({ client: this.name, clientMsgId, code: String(frame['code']), phase: phaseOf(sentAt), elapsedMs: Date.now() - sentAt });
      return 'refused';
    }
    const jobId = String(frame['jobId']);
    const conversationId = String(frame['conversationId']);
    // One conversation per client: its first chat makes it, the next ones continue it.
    this.conversationId ??= conversationId;
    const job: WsJob = { client: this, jobId, conversationId, clientMsgId, text, sentAt, phase: phaseOf(sentAt), endedAfterMs: null };
    this.jobs.push(job);
    const ended = this.ended.has(jobId) || (await within(new Promise<true>((resolve) => this.endWaiters.set(jobId, () => resolve(true))), HANG_MS));
    this.endWaiters.delete(jobId);
    if (ended !== true) return 'hung';
    job.endedAfterMs = Date.now() - sentAt;
    return 'accepted';
  }

  close(): void {
    this.socket.close();
  }
}

/** One request of an API client, as it ended. */
interface ApiCall {
  client: string;
  stream: boolean;
  text: string;
  phase: Phase;
  elapsedMs: number;
  /** The HTTP status; null when there was none (the connection failed). */
  status: number | null;
  /** For a stream: whether its 200 was followed by an error chunk. */
  errorChunk: boolean;
  answer: string;
  /** The `error` object of the JSON body or the error chunk. */
  error: { type?: string; error_reason?: string } | null;
  /** A failure that is not an HTTP answer (a reset, a timeout), as text. */
  failure: string | null;
  jobId: string | null;
}

/** One OpenAI API client's loop, through the official client (no retries: every answer is seen). */
class ApiLoadClient {
  readonly calls: ApiCall[] = [];
  private readonly openai: OpenAI;

  constructor(
    url: string,
    readonly name: string,
    owner: number,
    readonly stream: boolean,
  ) {
    this.openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: apiToken(owner), maxRetries: 0, timeout: HANG_MS });
  }

  async run(more: () => boolean): Promise<void> {
    let lastSentAt = 0;
    for (let k = 0; more(); k++) {
      lastSentAt = await paced(lastSentAt);
      const call = await this.call(`api ${this.name} m${k}`, lastSentAt);
      this.calls.push(call);
      if (call.failure !== null) return;
    }
  }

  private async call(text: string, sentAt: number): Promise<ApiCall> {
    const call: ApiCall = {
      client: this.name,
      stream: this.stream,
      text,
      phase: phaseOf(sentAt),
      elapsedMs: 0,
      status: null,
      errorChunk: false,
      answer: '',
      error: null,
      failure: null,
      jobId: null,
    };
    const messages = [{ role: 'user' as const, content: text }];
    try {
      if (this.stream) {
        const { data, response } = await this.openai.chat.completions.create({ model: 'auto', stream: true, messages }).withResponse();
        call.status = response.status;
        call.jobId = response.headers.get('x-switchboard-job-id');
        for await (const chunk of data) call.answer += chunk.choices[0]?.delta.content ?? '';
      } else {
        const { data, response } = await this.openai.chat.completions.create({ model: 'auto', messages }).withResponse();
        call.status = response.status;
        call.jobId = response.headers.get('x-switchboard-job-id');
        call.answer = data.choices[0]?.message.content ?? '';
      }
    } catch (error) {
      if (error instanceof OpenAI.APIConnectionError) call.failure = `${error.name}: ${error.message}`;
      else if (error instanceof OpenAI.APIError) {
        // An error chunk after a 200 has no status of its own.
        if (error.status === undefined) call.errorChunk = true;
        else call.status = error.status;
        call.error = (error.error ?? null) as ApiCall['error'];
      } else call.failure = String(error);
    }
    call.elapsedMs = Date.now() - sentAt;
    return call;
  }
}

/** What the run saw, for the checks. */
interface LoadReport {
  ws: WsLoadClient[];
  api: ApiLoadClient[];
  outageMs: number;
}

describeOnOwnCluster(
  `PostgreSQL stopped for 10 s under load: ${WS_OWNERS * WS_CLIENTS_PER_OWNER} WebSocket clients of ${WS_OWNERS} owners and ${API_OWNERS * API_CLIENTS_PER_OWNER} OpenAI API clients chatting throughout`,
  () => {
    let cluster: PostgresCluster | undefined;
    let small: FakeBackend;
    let large: FakeBackend;
    let gateway: TestGateway | undefined;
    let report: LoadReport | undefined;
    const rejections = watchUnhandledRejections();

    const ran = (): LoadReport => {
      if (report === undefined) throw new Error('the load did not run');
      return report;
    };
    const wsJobs = () => ran().ws.flatMap((client) => client.jobs);
    const apiCalls = () => ran().api.flatMap((client) => client.calls);

    beforeAll(async () => {
      cluster = await startPostgresCluster();
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, {
        classify: (text) => JSON.stringify(text.startsWith('quick') ? { action: 'direct', response: `answer to ${text}` } : { action: 'route' }),
        reason: (text) => ({ content: reasonerPieces(text), chunkDelayMs: PIECE_DELAY_MS }),
      });
      const backend = (fake: FakeBackend) => ({
        ...backendDefaults(fake),
        // Every client's job at once, classification beside streaming.
        concurrency: 64,
        timeoutMs: 10_000,
        streamDeadlineMs: 15_000,
        idleTimeoutMs: 5_000,
      });
      gateway = await startTestGateway({
        classifier: small,
        reasoner: large,
        config: {
          backends: { small: backend(small), large: backend(large) },
          database: { url: cluster.url, dataDir: 'unused', statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS },
          auth: {
            tokens: [...Array.from({ length: WS_OWNERS }, (_, o) => wsToken(o)), ...Array.from({ length: API_OWNERS }, (_, o) => apiToken(o))],
          },
        },
      });
      // One answer through the whole pipeline first, so the load's first jobs do not meet a cold gateway.
      const warmUp = await new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: apiToken(0), maxRetries: 0 }).chat.completions.create({
        model: 'auto',
        messages: [{ role: 'user', content: 'warm-up' }],
      });
      expect(warmUp.choices[0]?.message.content).toBe(expectedAnswer('warm-up'));
    }, 60_000);

    afterAll(async () => {
      rejections.stop();
      for (const client of report?.ws ?? []) client.close();
      // Started again in case a failure left the server stopped, so the gateway can flush.
      await cluster?.start().catch(() => undefined);
      await gateway?.close();
      await cluster?.destroy();
      await small?.close();
      await large?.close();
    }, 60_000);

    it(`keeps chatting before, through a ${STOP_MS / 1000} s pg_ctl stop -m fast and after the restart, without restarting the gateway`, async () => {
      const ws = await Promise.all(
        Array.from({ length: WS_OWNERS * WS_CLIENTS_PER_OWNER }, (_, i) => WsLoadClient.connect(gateway!.wsUrl, `w${String(i).padStart(2, '0')}`, i % WS_OWNERS)),
      );
      const api = Array.from(
        { length: API_OWNERS * API_CLIENTS_PER_OWNER },
        (_, i) => new ApiLoadClient(gateway!.url, `a${i}`, i % API_OWNERS, i % 2 === 0),
      );
      report = { ws, api, outageMs: 0 };

      const doneSince = (client: WsLoadClient, phase: Phase) =>
        client.jobs.filter((job) => job.phase === phase && client.events(job.jobId).at(-1)?.event === 'done').length;
      const answeredAfter = (client: ApiLoadClient) => client.calls.filter((call) => call.phase === 'after' && call.status === 200 && !call.errorChunk).length;
      const hung = () => ws.some((client) => client.unanswered.length > 0 || client.jobs.some((job) => job.endedAfterMs === null && job.sentAt + HANG_MS < Date.now()));
      const streamingNow = () =>
        ws.filter((client) => {
          const last = client.jobs.at(-1);
          if (last === undefined) return false;
          const events = client.events(last.jobId);
          return events.some((e) => e.event === 'result') && !TERMINAL.has(events.at(-1)!.event);
        }).length;

      let loadOver = false;
      const more = () => !loadOver;
      const loops = [...ws.map((client) => client.run(more)), ...api.map((client) => client.run(more))];
      try {
        await until(() => ws.every((client) => doneSince(client, 'before') >= DONE_BEFORE_STOP), `every WebSocket client has ${DONE_BEFORE_STOP} answers`, 30_000);
        await until(() => streamingNow() >= STREAMING_AT_STOP, `${STREAMING_AT_STOP} jobs mid-answer`, 10_000);

        timeline.stopBeganAt = Date.now();
        await cluster!.stop();
        // The server stays stopped for the whole 10 s, whatever the gateway does meanwhile.
        await sleep(Math.max(0, timeline.stopBeganAt + STOP_MS - Date.now()));
        await cluster!.start();
        timeline.restartedAt = Date.now();
        ran().outageMs = timeline.restartedAt - timeline.stopBeganAt;

        await until(
          () =>
            hung() ||
            (ws.every((client) => doneSince(client, 'after') >= DONE_AFTER_RESTART) && api.every((client) => answeredAfter(client) >= DONE_AFTER_RESTART)),
          `every client has ${DONE_AFTER_RESTART} answers after the restart`,
          HANG_MS,
        );
      } finally {
        loadOver = true;
        await Promise.all(loops);
      }

      const count = (phase: Phase, ended: (job: WsJob) => boolean) => wsJobs().filter((job) => job.phase === phase && ended(job)).length;
      const last = (job: WsJob) => job.client.events(job.jobId).at(-1)?.event;
      const refusals = ws.flatMap((client) => client.refusals);
      const calls = apiCalls();
      const byPhase = (f: (phase: Phase) => number) => PHASES.map(f).join('/');
      console.log(
        `PostgreSQL stopped under load: outage ${(ran().outageMs / 1000).toFixed(1)} s (stop, ${STOP_MS / 1000} s stopped, start); ` +
          `WebSocket jobs sent before/during/after it: done ${byPhase((p) => count(p, (job) => last(job) === 'done'))}, ` +
          `error ${byPhase((p) => count(p, (job) => last(job) === 'error'))}; ` +
          `chats refused ${byPhase((p) => refusals.filter((r) => r.phase === p).length)}; ` +
          `API requests 200 ${byPhase((p) => calls.filter((c) => c.phase === p && c.status === 200 && !c.errorChunk).length)}, ` +
          `other ${byPhase((p) => calls.filter((c) => c.phase === p && !(c.status === 200 && !c.errorChunk)).length)}; ` +
          `longest WebSocket job ${Math.max(...wsJobs().map((job) => job.endedAfterMs ?? Number.POSITIVE_INFINITY))} ms, ` +
          `refusal ${Math.max(0, ...refusals.map((r) => r.elapsedMs))} ms, API request ${Math.max(...calls.map((c) => c.elapsedMs))} ms`,
      );
      expect(ws.flatMap((client) => client.unanswered), 'chats that got no answer').toEqual([]);
      expect(wsJobs().filter((job) => job.endedAfterMs === null).map((job) => job.jobId), 'jobs that never ended').toEqual([]);
    }, 120_000);

    it(`ends every accepted WebSocket job with exactly one terminal event, last — done, or error with ${ALLOWED_REASONS.join('/')} — within ${JOB_ENDS_WITHIN_MS} ms`, () => {
      const wrong = wsJobs()
        .map((job) => ({ job, events: job.client.events(job.jobId) }))
        .filter(({ job, events }) => {
          const terminals = events.filter((e) => TERMINAL.has(e.event));
          const last = events.at(-1);
          const ending =
            last?.event === 'done'
              ? job.client.socket.answer(job.jobId) === expectedAnswer(job.text)
              : last?.event === 'error' && ALLOWED_REASONS.includes(String(last.data['reason']));
          return !(
            events.every((e, i) => e.seq === i + 1) &&
            terminals.length === 1 &&
            ending &&
            job.endedAfterMs !== null &&
            job.endedAfterMs <= JOB_ENDS_WITHIN_MS
          );
        })
        .map(({ job, events }) => ({
          job: job.clientMsgId,
          phase: job.phase,
          endedAfterMs: job.endedAfterMs,
          events: events.map((e) => `${e.seq}:${e.event}${e.event === 'error' ? `/${String(e.data['reason'])}` : ''}`),
        }));
      expect(wrong, 'jobs that did not end right').toEqual([]);
      // The outage did hit jobs under way: some of those sent before it failed.
      expect(wsJobs().filter((job) => job.phase === 'before' && job.client.events(job.jobId).at(-1)?.event === 'error').length).toBeGreaterThan(0);
    });

    it('answers every chat sent after the restart with done, without restarting the gateway', () => {
      const after = wsJobs().filter((job) => job.phase === 'after');
      expect(after.length).toBeGreaterThanOrEqual(WS_OWNERS * WS_CLIENTS_PER_OWNER * DONE_AFTER_RESTART);
      expect(after.filter((job) => job.client.events(job.jobId).at(-1)?.event !== 'done').map((job) => job.clientMsgId)).toEqual([]);
    });

    it(`refuses only while the store is out, with store_unavailable within ${REPLY_WITHIN_MS} ms, and takes the chat when sent again with its clientMsgId`, () => {
      const { ws } = ran();
      const refusals = ws.flatMap((client) => client.refusals);
      expect(refusals.filter((r) => r.code !== 'store_unavailable' || r.phase === 'after' || r.elapsedMs > REPLY_WITHIN_MS)).toEqual([]);
      expect(ws.flatMap((client) => client.stray), 'error frames that answered no chat').toEqual([]);
      // Every refused chat was taken later under the same clientMsgId (the load ends only after the restart).
      const accepted = new Set(wsJobs().map((job) => job.clientMsgId));
      expect([...new Set(refusals.map((r) => r.clientMsgId))].filter((id) => !accepted.has(id)), 'refused chats never taken').toEqual([]);
    });

    it('answers every OpenAI API request over HTTP — 200 with its answer, or 503 store_unavailable as JSON, never a dropped connection — and 200 after the restart', () => {
      const calls = apiCalls();
      expect(calls.filter((call) => call.failure !== null).map((call) => `${call.text}: ${call.failure}`), 'requests without an HTTP answer').toEqual([]);
      const wrong = calls.filter((call) => {
        if (call.status === 200 && !call.errorChunk) return !(call.answer === expectedAnswer(call.text) && call.jobId !== null);
        if (call.phase === 'after') return true;
        const storeError = call.error?.type === 'server_error' && call.error.error_reason === 'store_unavailable';
        return !(storeError && (call.errorChunk ? call.status === 200 : call.status === 503));
      });
      expect(wrong, 'requests answered otherwise').toEqual([]);
      expect(Math.max(...calls.map((call) => call.elapsedMs))).toBeLessThanOrEqual(JOB_ENDS_WITHIN_MS);
      expect(calls.filter((call) => call.phase === 'during').length).toBeGreaterThan(0);
    });

    it('catches the journal up: every accepted message stored in its conversation, nothing running, each journal what its client saw, each done answer stored', async () => {
      const jobs = wsJobs();
      await vi.waitFor(
        async () => {
          const db = new pg.Client({ connectionString: cluster!.url });
          await db.connect();
          try {
            const rows = (await db.query<{ id: string; source: string; status: string; reason: string | null }>('select id, source, status, reason from jobs')).rows;
            const events = (
              await db.query<{ job_id: string; seq: number; event: string; data: Record<string, unknown> }>(
                "select e.job_id, e.seq, e.event, e.data from job_events e join jobs j on j.id = e.job_id where j.source = 'ws' order by e.job_id, e.seq",
              )
            ).rows;
            const messages = (
              await db.query<{ job_id: string; conversation_id: string; role: string; content: string }>(
                'select job_id, conversation_id, role, content from messages where job_id is not null',
              )
            ).rows;

            expect(rows.filter((row) => row.status === 'running').map((row) => `${row.source} ${row.id}`), 'jobs left running').toEqual([]);
            // An accept reported failed (that may have committed after its timeout) was erased.
            expect(
              rows.filter((row) => row.source === 'ws').map((row) => row.id).sort(),
              'the stored WebSocket jobs are the accepted ones',
            ).toEqual(jobs.map((job) => job.jobId).sort());

            const journals = new Map<string, Array<{ seq: number; event: string; data: Record<string, unknown> }>>();
            for (const { job_id, seq, event, data } of events) journals.set(job_id, [...(journals.get(job_id) ?? []), { seq, event, data }]);
            for (const job of jobs) {
              const saw = job.client.events(job.jobId);
              expect(journals.get(job.jobId), `journal of ${job.clientMsgId}`).toEqual(saw.map(({ seq, event, data }) => ({ seq, event, data })));
              const of = messages.filter((m) => m.job_id === job.jobId);
              expect(
                of.filter((m) => m.role === 'user').map((m) => ({ conversation: m.conversation_id, content: m.content })),
                `message of ${job.clientMsgId}`,
              ).toEqual([{ conversation: job.client.conversationId, content: job.text }]);
              const terminal = saw.at(-1)!;
              const row = rows.find((r) => r.id === job.jobId);
              const answers = of.filter((m) => m.role === 'assistant').map((m) => m.content);
              if (terminal.event === 'done') {
                expect(row, `job ${job.clientMsgId}`).toMatchObject({ status: 'done' });
                expect(answers, `answer of ${job.clientMsgId}`).toEqual([expectedAnswer(job.text)]);
              } else {
                expect(row, `job ${job.clientMsgId}`).toMatchObject({ status: terminal.event, reason: terminal.data['reason'] ?? null });
                expect(answers, `no answer kept for ${job.clientMsgId}`).toEqual([]);
              }
            }
            // The API's jobs (written after delivery) are on record as their clients saw them end: all those
            // answered after the restart; of the others, those whose accept was written (see the README).
            for (const call of apiCalls()) {
              const row = rows.find((r) => r.id === call.jobId);
              if (row === undefined && call.phase !== 'after') continue;
              expect(row, `API job ${call.text}`).toMatchObject({ source: 'openai', status: 'done' });
            }
          } finally {
            await db.end();
          }
        },
        { timeout: REPAIRED_WITHIN_MS, interval: 500 },
      );
      const db = new pg.Client({ connectionString: cluster!.url });
      await db.connect();
      try {
        const kept = new Set((await db.query<{ id: string }>("select id from jobs where source = 'openai'")).rows.map((row) => row.id));
        const count = (phase: Phase) => {
          const calls = apiCalls().filter((call) => call.phase === phase);
          return `${calls.filter((call) => call.jobId !== null && kept.has(call.jobId)).length} of ${calls.length}`;
        };
        console.log(`OpenAI API jobs on record, sent before/during/after the outage: ${PHASES.map(count).join(', ')}`);
      } finally {
        await db.end();
      }
    }, REPAIRED_WITHIN_MS + 10_000);

    it('replays every WebSocket job on a fresh connection (subscribe afterSeq 0) exactly as its client saw it live', async () => {
      const strip = (e: EventFrame) => ({ seq: e.seq, event: e.event, data: e.data, at: e.at });
      await Promise.all(
        Array.from({ length: WS_OWNERS }, async (_, owner) => {
          const checker = new ReplayChecker(gateway!.wsUrl, { token: wsToken(owner) });
          try {
            for (const job of wsJobs().filter((j) => j.client.owner === owner)) {
              expect((await checker.replay(job.jobId, 0)).map(strip), `replay of ${job.clientMsgId}`).toEqual(job.client.events(job.jobId).map(strip));
            }
          } finally {
            checker.close();
          }
        }),
      );
    }, 60_000);

    it('let no promise rejection go unhandled, and the gateway still answers /healthz 200 and a new chat', async () => {
      expect(rejections.seen).toEqual([]);
      const health = await request(`${gateway!.url}/healthz`);
      expect({ status: health.statusCode, body: await health.body.json() }).toEqual({ status: 200, body: { ok: true } });
      const client = await TestClient.connect(gateway!.wsUrl, { Authorization: `Bearer ${wsToken(0)}` });
      try {
        const { jobId } = await client.chat('story after the load');
        expect((await client.finished(jobId)).at(-1)?.event).toBe('done');
        expect(client.answer(jobId)).toBe(expectedAnswer('story after the load'));
      } finally {
        client.close();
      }
      await vi.waitFor(() => expect(gateway!.runtime.status().jobs).toEqual({ active: 0, pending: 0 }), { timeout: 10_000 });
    });
  },
);
