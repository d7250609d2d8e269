/**
 * The fault matrix's data and machinery, shared by its three door files (fault-matrix-*.test.ts): the
 * faults, the job stages they hit, what each cell must end with, one gateway per stage over real fakes
 * (and a real Radicale behind a fault proxy for the tool stage), and the checks every cell makes after
 * its job ended: slots free, the next job works, the server answers, no unhandled rejection.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../../src/config/load-config.js';
import { createRuntime } from '../../../src/runtime/create-runtime.js';
import type { Runtime } from '../../../src/runtime/runtime.js';
import { startGateway } from '../../../src/transport/start-gateway.js';
import { TOOL_TIMEOUT_MS } from '../../../src/actors/tools/create-tool-registry.js';
import { startFakeBackend, type FakeBackend, type FakeReply, type FakeRequestBody } from '../../fakes/fake-openai-backend.js';
import { CALENDAR_NAME, FIXED_NOW, seedCalendar, TIME_ZONE } from '../../helpers/calendar-seeds.js';
import { testBackend } from '../../helpers/gateway.js';
import { classifiedText } from '../../helpers/scripted-models.js';
import { startRadicale, type Radicale } from '../../helpers/start-radicale.js';
import { FaultProxy } from './fault-proxy.js';

/** The backend faults of issue 14, in the matrix's order. */
export const FAULTS = [
  'refused',
  'http_5xx',
  'hang_before_headers',
  'stall_mid_stream',
  'drop_mid_stream',
  'malformed_sse',
  'slow_drip',
  'restarted',
] as const;
export type Fault = (typeof FAULTS)[number];

/** Where the fault hits the job. */
export const STAGES = ['classify', 'route', 'react', 'tools'] as const;
export type Stage = (typeof STAGES)[number];

/**
 * The gateway's own timers, short. `timeoutMs` bounds a non-streamed call and a stream's first byte,
 * `idleTimeoutMs` a stream's silence, `streamDeadlineMs` a whole stream. A tool call has the fixed
 * 10 s of DESIGN §6 (there is no config key for it).
 */
export const TIMERS = { timeoutMs: 1_000, idleTimeoutMs: 500, streamDeadlineMs: 2_000, connectTimeoutMs: 1_000, toolTimeoutMs: TOOL_TIMEOUT_MS };

/** What a cell must end with, whatever the door. */
export interface Expected {
  terminal: 'done' | 'error';
  /** The `reason` of an `error`. */
  reason: string | null;
  /** The answer of a `done`. */
  answer: string | null;
  /** The gateway timer that ends it (its end comes no earlier); 0: no timer, the fault itself ends it. */
  timerMs: number;
  /** Part of the answer was streamed before the failure (the OpenAI door then ends its SSE with an error chunk). */
  streamedFirst: boolean;
}

/** The answers of the healthy models: the classifier streaming itself, the reasoner, the tool phrasing. */
export const ANSWERS = { small: 'small answer', large: 'large answer', phrased: 'phrased calendar' } as const;

/** What the next, healthy job of each stage answers. */
export const HEALTHY_ANSWERS: Record<Stage, string> = { classify: ANSWERS.small, route: ANSWERS.large, react: ANSWERS.large, tools: ANSWERS.phrased };

/** What each stage's job says: the tool stage's message is pre-routed to `calendar.today`. */
export const TEXTS: Record<Stage, string> = {
  classify: 'tell me a story',
  route: 'explain entropy',
  react: 'what do my documents say',
  tools: 'what is on my calendar today',
};

/** The backend that ran out of time, by fault, for a stage that streams (route, react's final round). */
const STREAM_FAILURES: Record<Fault, { reason: string; timerMs: number; streamedFirst: boolean }> = {
  refused: { reason: 'backend_unavailable', timerMs: 0, streamedFirst: false },
  http_5xx: { reason: 'backend_unavailable', timerMs: 0, streamedFirst: false },
  hang_before_headers: { reason: 'backend_timeout', timerMs: TIMERS.timeoutMs, streamedFirst: false },
  stall_mid_stream: { reason: 'backend_timeout', timerMs: TIMERS.idleTimeoutMs, streamedFirst: true },
  drop_mid_stream: { reason: 'backend_disconnected', timerMs: 0, streamedFirst: true },
  malformed_sse: { reason: 'backend_protocol_error', timerMs: 0, streamedFirst: true },
  slow_drip: { reason: 'stream_deadline_exceeded', timerMs: TIMERS.streamDeadlineMs, streamedFirst: true },
  restarted: { reason: 'backend_disconnected', timerMs: 0, streamedFirst: true },
};

/** A tool server's faults: a timeout is the tool's, anything else the tool failing. */
const TOOL_FAILURES: Record<Fault, { reason: string; timerMs: number }> = {
  refused: { reason: 'tool_failed', timerMs: 0 },
  http_5xx: { reason: 'tool_failed', timerMs: 0 },
  hang_before_headers: { reason: 'tool_timeout', timerMs: TIMERS.toolTimeoutMs },
  stall_mid_stream: { reason: 'tool_timeout', timerMs: TIMERS.toolTimeoutMs },
  drop_mid_stream: { reason: 'tool_failed', timerMs: 0 },
  malformed_sse: { reason: 'tool_failed', timerMs: 0 },
  slow_drip: { reason: 'tool_timeout', timerMs: TIMERS.toolTimeoutMs },
  restarted: { reason: 'tool_failed', timerMs: 0 },
};

/** The cell's expected ending (the table at the top of each door file says the same in words). */
export function expected(stage: Stage, fault: Fault): Expected {
  if (stage === 'classify') {
    // A classifier that cannot answer is not asked again: the reasoner answers. A reply that is not the
    // protocol is a bad reply, not a down server: the message is answered directly (the classifier streams).
    const down = fault !== 'malformed_sse';
    const timed = fault === 'hang_before_headers' || fault === 'stall_mid_stream' || fault === 'slow_drip';
    return { terminal: 'done', reason: null, answer: down ? ANSWERS.large : ANSWERS.small, timerMs: timed ? TIMERS.timeoutMs : 0, streamedFirst: false };
  }
  if (stage === 'tools') return { terminal: 'error', answer: null, streamedFirst: false, ...TOOL_FAILURES[fault] };
  return { terminal: 'error', answer: null, ...STREAM_FAILURES[fault] };
}

/** The fake model server's reply for a fault (`refused` is not a reply: the server is down). */
function faultReply(fault: Exclude<Fault, 'refused'>): FakeReply {
  switch (fault) {
    case 'http_5xx':
      return { fault: 'http_500', status: 503 };
    case 'restarted':
      return { fault: 'restart', content: ['large '] };
    default:
      return { fault, content: ['partial '] };
  }
}

/** The proxy's fault for the tool server. */
const PROXY_FAULTS = {
  refused: 'refuse',
  http_5xx: 'http_500',
  hang_before_headers: 'hang_before_headers',
  stall_mid_stream: 'stall_mid_stream',
  drop_mid_stream: 'drop_mid_stream',
  malformed_sse: 'malformed',
  slow_drip: 'slow_drip',
  restarted: 'restart',
} as const satisfies Record<Fault, string>;

/** A `search` call of the ReAct loop's tool rounds. */
const SEARCH_ROUND: FakeReply = { toolCalls: [{ name: 'search', arguments: '{"query":"fault matrix"}' }] };

/** One stage's gateway with its fakes, ready for cells. */
export interface MatrixGateway {
  stage: Stage;
  url: string;
  wsUrl: string;
  runtime: Runtime;
  small: FakeBackend;
  large: FakeBackend;
  /** JSON log lines of the gateway (warn and above). */
  logLines: Array<Record<string, unknown>>;
  /** Sets the fault up for the next job of this stage. */
  arm(fault: Fault): Promise<void>;
  /** After the job: the servers are back and pass everything through. */
  disarm(): Promise<void>;
  /** The request the fault was meant for did reach its server. */
  faultReached(): boolean;
  close(): Promise<void>;
}

/** Starts one stage's gateway: fakes scripted for the stage, short timers, optionally the Synology bot. */
export async function startMatrixGateway(stage: Stage, options: { synologyUrl?: string; synologyToken?: string } = {}): Promise<MatrixGateway> {
  const small = await startFakeBackend();
  const large = await startFakeBackend();
  // The classifier: `route` for the reasoner's stages, else nothing in particular (`direct`: it answers itself).
  const classification = stage === 'route' || stage === 'react' ? '{"action":"route"}' : '{"action":"direct"}';
  small.setDefault((body: FakeRequestBody) => {
    if (classifiedText(body) !== null) return { content: classification };
    if (!body.stream) return { content: ANSWERS.phrased };
    return { content: ['small ', 'answer'] };
  });
  // The reasoner answers at once (a ReAct tool round without calls is the answer).
  large.setDefault((body: FakeRequestBody) => (body.stream ? { content: ['large ', 'answer'] } : { content: ANSWERS.large }));

  let radicale: Radicale | null = null;
  let proxy: FaultProxy | null = null;
  if (stage === 'tools') {
    radicale = await startRadicale();
    await seedCalendar(radicale);
    proxy = await FaultProxy.start(radicale.url);
  }

  const dataDir = mkdtempSync(join(tmpdir(), `sb-fault-${stage}-`));
  const backend = (fake: FakeBackend, tools = false) => ({
    ...testBackend(fake),
    timeoutMs: TIMERS.timeoutMs,
    idleTimeoutMs: TIMERS.idleTimeoutMs,
    streamDeadlineMs: TIMERS.streamDeadlineMs,
    connectTimeoutMs: TIMERS.connectTimeoutMs,
    // One probe at start: no later probe or ping takes a reply meant for a job, or reports a fault's server down.
    healthIntervalMs: 3_600_000,
    tools,
  });
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    database: { url: null, dataDir },
    backends: { small: backend(small), large: backend(large, stage === 'react') },
    roles: { classifier: 'small', reasoner: 'large' },
    modes: { daily: 'small', deep: 'large' },
    // Off, so a reasoner's failure shows its own reason instead of the classifier's stand-in answer.
    fallback: { reasonerToClassifier: false },
    persona: { name: '이드', locale: 'en', timeZone: TIME_ZONE },
    ...(proxy && radicale ? { tools: { calendar: { url: proxy.url, user: radicale.user, password: radicale.password, calendar: CALENDAR_NAME } } } : {}),
    ...(options.synologyUrl ? { synology: { token: options.synologyToken ?? 'synology-token', incomingUrl: options.synologyUrl, mode: 'incoming' } } : {}),
  });
  const logLines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const runtime = createRuntime(config, { log, ...(stage === 'tools' ? { now: () => FIXED_NOW } : {}) });
  await runtime.start();
  // Synology's 500 ms between posts and its retry backoff pass at once: the cells measure the job, not the spacing.
  const instant = { now: () => Date.now(), sleep: (_ms: number, signal: AbortSignal) => (signal.aborted ? Promise.reject(signal.reason as Error) : Promise.resolve()) };
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, ...(options.synologyUrl ? { synology: { clock: instant } } : {}) });

  let reached: () => boolean = () => false;
  return {
    stage,
    url: gateway.url,
    wsUrl: `${gateway.url.replace(/^http/, 'ws')}/ws`,
    runtime,
    small,
    large,
    logLines,
    async arm(fault) {
      if (stage === 'tools') {
        const before = proxy!.faulted;
        reached = () => proxy!.faulted > before || fault === 'refused';
        await proxy!.arm(PROXY_FAULTS[fault]);
        return;
      }
      const target = stage === 'classify' ? small : large;
      const before = target.chatRequests.length;
      if (fault === 'refused') {
        // A server that is not there refuses every round: the loop's first one meets it.
        reached = () => true;
        await target.setDown(true);
        return;
      }
      // React: two tool rounds that search the documents, then the final streamed round meets the fault.
      const ahead = stage === 'react' ? 2 : 0;
      reached = () => target.chatRequests.length > before + ahead;
      if (stage === 'react') target.enqueue(SEARCH_ROUND, SEARCH_ROUND);
      target.enqueue(faultReply(fault));
    },
    async disarm() {
      await small.setDown(false);
      await large.setDown(false);
      await proxy?.disarm();
    },
    faultReached: () => reached(),
    async close() {
      await runtime.stop(0);
      await gateway.close();
      await small.close();
      await large.close();
      await proxy?.close();
      await radicale?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `condition` holds, checking every 10 ms; fails after `timeoutMs` saying `what`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Both backends' mailboxes are empty: no request running or waiting. */
export async function slotsFreed(runtime: Runtime): Promise<void> {
  const busy = () =>
    Object.entries(runtime.status().backends)
      .filter(([, backend]) => backend.queue.running > 0 || backend.queue.waiting > 0)
      .map(([name, backend]) => `${name} ${JSON.stringify(backend.queue)}`);
  await waitUntil(() => busy().length === 0, 'backend slots freed');
}

/** Records the process's unhandled rejections while the matrix runs. */
export function watchUnhandledRejections(): { seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', listener);
  return { seen, stop: () => void process.off('unhandledRejection', listener) };
}

/** The name a cell carries in the output. */
export function cellName(stage: Stage, fault: Fault): string {
  const e = expected(stage, fault);
  const ending = e.terminal === 'done' ? `done (${e.answer})` : `error ${e.reason}`;
  return `${fault} → ${ending}${e.timerMs > 0 ? ` after ${e.timerMs} ms` : ''}`;
}
