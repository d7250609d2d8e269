/**
 * The flight recorder: a job's transitions (state, event type, time — never a message) are journaled
 * with its end, served to its owner at GET /jobs/:id/trace, and printed by `npm run trace`.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, createActor, createMachine, setup } from 'xstate';
import type { JobTraceBody } from '../src/jobs/job-trace.js';
import { MAX_TRACE_STEPS, stateName, toTimeline } from '../src/jobs/job-trace.js';
import { JobTraceRecorder } from '../src/runtime/job-trace-recorder.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { eventually } from './helpers/frames.js';
import { runScript } from './helpers/run-script.js';
import { scriptModels } from './helpers/scripted-models.js';

const TOKEN = 'trace-owner-token';
const OTHER = 'trace-other-token';
const TEXT = 'please think hard about the secret plan 7f3q';
/** The reasoner waits this long before each streamed piece, so the job is in `streaming` at least this long. */
const CHUNK_DELAY_MS = 30;

describe('JobTraceRecorder', () => {
  it('records the state each event left the actor in, with the event, skips re-entries, and hands the steps over once', () => {
    const machine = setup({ types: { events: {} as { type: 'go' } | { type: 'tick' } | { type: 'stop' } } }).createMachine({
      id: 'demo',
      initial: 'idle',
      context: { ticks: 0 },
      states: {
        idle: { on: { go: 'passing' } },
        passing: { always: 'working' },
        working: {
          initial: 'waiting',
          states: { waiting: { on: { tick: { target: 'waiting', reenter: true, actions: assign({ ticks: ({ context }) => context.ticks + 1 }) } } } },
          on: { stop: 'finished' },
        },
        finished: { type: 'final' },
      },
    });
    const recorder = new JobTraceRecorder();
    const recording = recorder.recording(machine);
    const actor = createActor(recording, { id: 'job:j1' }).start();
    actor.send({ type: 'go' });
    for (let i = 0; i < 5; i += 1) actor.send({ type: 'tick' });
    expect(actor.getSnapshot().context.ticks).toBe(5);
    // `passing` is passed through within the `go` step: the step is where the event left the actor.
    expect(recorder.peek('j1')?.map(({ state, event }) => [state, event])).toEqual([
      ['idle', 'xstate.init'],
      ['working.waiting', 'go'],
    ]);
    actor.send({ type: 'stop' });
    const steps = recorder.take('j1');
    expect(steps?.map(({ state, event }) => [state, event]).at(-1)).toEqual(['finished', 'stop']);
    expect(recorder.take('j1')).toBeUndefined();
  });

  it('forgets a job whose steps nobody took once it has stopped, and keeps the final state past the cap', async () => {
    const machine = createMachine({ initial: 'a', states: { a: { on: { flip: 'b', end: 'done' } }, b: { on: { flip: 'a', end: 'done' } }, done: { type: 'final' } } });
    const recorder = new JobTraceRecorder();
    const recording = recorder.recording(machine);
    const actor = createActor(recording, { id: 'job:j2' }).start();
    for (let i = 0; i < MAX_TRACE_STEPS + 10; i += 1) actor.send({ type: 'flip' });
    expect(recorder.peek('j2')).toHaveLength(MAX_TRACE_STEPS);
    actor.send({ type: 'end' });
    expect(recorder.peek('j2')?.at(-1)).toMatchObject({ state: 'done', event: 'end' });
    await Promise.resolve();
    expect(recorder.size).toBe(0);
    expect(recorder.peek('j2')).toBeUndefined();
    // A stopped actor is forgotten too.
    const stopped = createActor(recording, { id: 'job:j3' }).start();
    stopped.stop();
    await Promise.resolve();
    expect(recorder.size).toBe(0);
  });

  it('names states by path and computes durations from the next step', () => {
    expect(stateName({ route: { streaming: 'waiting' } })).toBe('route.streaming.waiting');
    expect(stateName({ a: 'x', b: { c: 'y' } })).toBe('a.x, b.c.y');
    expect(toTimeline([{ state: 'a', event: 'xstate.init', at: 1000 }, { state: 'b', event: 'go', at: 1250 }])).toEqual([
      { state: 'a', event: 'xstate.init', at: new Date(1000).toISOString(), ms: 250, leftOn: 'go' },
      { state: 'b', event: 'go', at: new Date(1250).toISOString(), ms: null, leftOn: null },
    ]);
  });
});

describe('a routed job cancelled mid-stream', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TestGateway;
  let jobId: string;
  let dataDir: string;
  /** GET /jobs/:id/trace while the answer streamed. */
  let live: { status: number; body: JobTraceBody };

  beforeAll(async () => {
    [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
    scriptModels(small, large, {
      classify: () => JSON.stringify({ action: 'route' }),
      reason: () => ({ fault: 'slow_drip', chunkDelayMs: CHUNK_DELAY_MS }),
    });
    gateway = await startTestGateway({ classifier: small, reasoner: large, config: { auth: { tokens: [TOKEN, OTHER] } } });
    dataDir = gateway.dataDir;
    const client = await TestClient.connect(gateway.wsUrl, { authorization: `Bearer ${TOKEN}` });
    ({ jobId } = await client.chat(TEXT));
    // Streaming: the first piece of the answer has arrived.
    await client.waitFor((frame) => frame.type === 'event' && frame.jobId === jobId && frame.event === 'result');
    const response = await fetch(`${gateway.url}/jobs/${jobId}/trace`, { headers: { authorization: `Bearer ${TOKEN}` } });
    live = { status: response.status, body: (await response.json()) as JobTraceBody };
    client.send({ type: 'cancel', jobId });
    const events = await client.finished(jobId);
    expect(events.at(-1)?.event).toBe('cancelled');
    client.close();
  }, 60_000);

  afterAll(async () => {
    await gateway?.close({ keepData: true });
    await Promise.all([small?.close(), large?.close()]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const getTrace = async (id: string, token: string) => {
    const response = await fetch(`${gateway.url}/jobs/${id}/trace`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, text: await response.text() };
  };

  it('GET /jobs/:id/trace shows classify → route → streaming → cancelled with durations, to its owner', async () => {
    const { status, text } = await getTrace(jobId, TOKEN);
    expect(status).toBe(200);
    const body = JSON.parse(text) as JobTraceBody;
    expect(body).toMatchObject({ jobId, status: 'cancelled' });
    const states = body.transitions.map((entry) => entry.state);
    expect(states).toEqual(['ack', 'classify.waiting', 'route.checkHealth', 'route.streaming.waiting', 'cancelled']);
    const at = (state: string) => body.transitions.find((entry) => entry.state === state)!;
    expect(at('ack').leftOn).toBe('xstate.done.actor.loadConversation');
    expect(at('classify.waiting').leftOn).toBe('infer.done');
    expect(at('route.checkHealth').leftOn).toBe('xstate.done.actor.readHealth');
    expect(at('cancelled')).toMatchObject({ event: 'cancel', ms: null, leftOn: null });
    // Every state but the last has a duration; they add up to the time from the first to the last step.
    const durations = body.transitions.slice(0, -1).map((entry) => entry.ms);
    for (const ms of durations) expect(ms).toBeGreaterThanOrEqual(0);
    const total = Date.parse(body.transitions.at(-1)!.at) - Date.parse(body.transitions[0]!.at);
    expect(durations.reduce((sum, ms) => sum! + ms!, 0)).toBe(total);
    // The reasoner waited CHUNK_DELAY_MS before its first piece, and the job was cancelled after it.
    expect(at('route.streaming.waiting').ms).toBeGreaterThanOrEqual(CHUNK_DELAY_MS - 5);
    // Types and times only: never the message or a streamed piece.
    expect(text).not.toContain('secret plan');
    expect(text).not.toContain('"content"');
  });

  it('while the job runs, GET /jobs/:id/trace answers its steps so far', () => {
    expect(live.status).toBe(200);
    expect(live.body.status).toBe('running');
    expect(live.body.transitions.at(-1)).toMatchObject({ state: 'route.streaming.waiting', ms: null, leftOn: null });
  });

  it('a stateless OpenAI API job is traced too, once its journal is written after delivery', async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ model: 'daily', messages: [{ role: 'user', content: 'a direct question' }] }),
    });
    expect(response.status).toBe(200);
    await response.text();
    const id = response.headers.get('x-switchboard-job-id')!;
    let body: JobTraceBody | undefined;
    await eventually(async () => {
      const answer = await getTrace(id, TOKEN);
      body = answer.status === 200 ? (JSON.parse(answer.text) as JobTraceBody) : undefined;
      return body?.status === 'done';
    }, 'the stateless job journaled');
    expect(body!.transitions.map((entry) => entry.state)).toEqual(['ack', 'modeStream.waiting', 'done']);
  });

  it('is 404 for another owner, an unknown job, and 401 without a token', async () => {
    expect((await getTrace(jobId, OTHER)).status).toBe(404);
    expect((await getTrace('00000000-0000-4000-8000-000000000000', TOKEN)).status).toBe(404);
    expect((await fetch(`${gateway.url}/jobs/${jobId}/trace`)).status).toBe(401);
  });

  it('npm run trace prints the timeline from the data folder once the gateway has stopped; an unknown job is one sentence and exit 1', async () => {
    await gateway.close({ keepData: true });
    const run = await runScript('scripts/trace.ts', [jobId, '--data-dir', dataDir], { timeoutMs: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^job ${jobId} \\(cancelled\\), 5 states in \\d+ ms, from `));
    const order = ['classify.waiting', 'route.checkHealth', 'route.streaming.waiting', 'cancelled'].map((state) => lines.findIndex((line) => line.includes(` ${state} `) || line.endsWith(` ${state}`) || line.includes(` ${state}  `)));
    expect(order.every((index) => index > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(lines.find((line) => line.includes('route.streaming.waiting'))).toMatch(/route\.streaming\.waiting\s+\d+ ms {2}→ cancel$/);
    expect(lines.find((line) => line.includes(' cancelled'))).toMatch(/cancelled\s+final$/);
    expect(run.stdout).not.toContain('secret plan');

    const unknown = await runScript('scripts/trace.ts', ['no-such-job', '--data-dir', dataDir], { timeoutMs: 60_000 });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`trace: no job "no-such-job" in PGlite in ${dataDir}\n`);
  }, 120_000);
});
