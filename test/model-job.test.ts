import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getSimplePaths } from '@xstate/graph';
import { createActor, fromCallback, fromPromise, type AnyActorRef, type InspectionEvent, type SnapshotFrom } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobMachine } from '../src/machines/job-machine.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import { testToolkit } from './helpers/job-toolkit.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { seedDocuments, startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText } from './helpers/scripted-models.js';

/**
 * Model-based test of the job machine: simple paths are generated from the machine with @xstate/graph
 * for three kinds of message (one the classifier must judge, one pre-routed to the system status, one
 * pre-routed to the document tool), each path is turned into a script for the two fake model servers
 * (and a moment to cancel), driven through the running gateway, and the states the real job actor goes
 * through must be the path's states.
 */

type JobSnapshot = SnapshotFrom<typeof jobMachine>;

const prompts = await loadPrompts(undefined, { name: 'Eid', locale: 'en' });
const toolkit = testToolkit(prompts);

const noop = (): void => {};
const walkable = jobMachine.provide({
  actors: {
    loadConversation: fromPromise(() => new Promise(noop)),
    infer: fromCallback(noop),
    runTool: fromPromise(() => new Promise(noop)),
    saveDraft: fromPromise(() => new Promise(noop)),
    clearDraft: fromPromise(() => new Promise(noop)),
    describeStatus: fromPromise(() => new Promise(noop)),
    readHealth: fromPromise(() => new Promise(noop)),
  },
  actions: { reportFinished: noop },
});
const sink = createActor(fromCallback(noop)).start();

/** What the classifier may answer, by name: the walk offers each, the script replays the chosen one. */
const CLASSIFICATIONS: Record<string, string> = {
  ready: JSON.stringify({ action: 'direct', response: 'A ready answer.' }),
  direct: JSON.stringify({ action: 'direct' }),
  clarify: JSON.stringify({ action: 'clarify', response: 'Which one?' }),
  route: JSON.stringify({ action: 'route' }),
  document: JSON.stringify({ action: 'tools', tool: 'document', operation: 'search', params: { query: 'budget' } }),
  calendar: JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'today', params: {} }),
};
const result = (content: string) => ({ content, toolCalls: [], finishReason: 'stop' });
const failure = { code: 'backend_unavailable', reason: 'backend_unavailable', retryable: true, message: 'x' };
/** A classifier that answered, but not in the protocol: asked again as a stream (unlike one that is down). */
const garbled = { code: 'backend_protocol_error', reason: 'backend_protocol_error', retryable: false, message: 'x' };
const stateKey = (snapshot: JobSnapshot): string => JSON.stringify(snapshot.value);
const isStreaming = (key: string): boolean => key.includes('"streaming"') || key.includes('"fallback"') || key.includes('modeStream');

/**
 * Events the running system can be made to produce, by state. Left out, because no script can produce
 * them on demand: a store that fails (errors of loadConversation, describeStatus), a tool
 * that times out or throws, and drafts (calendar is not configured here, so no draft is ever made).
 */
function producible(snapshot: JobSnapshot): Array<{ type: string; [key: string]: unknown }> {
  const key = stateKey(snapshot);
  if (key === '"ack"') return [{ type: 'xstate.done.actor.loadConversation', output: { history: [], draft: null } }];
  if (key.includes('classify')) {
    return [
      ...Object.entries(CLASSIFICATIONS).map(([name, content]) => ({ type: 'infer.done', requestId: 'r', result: result(content), name })),
      { type: 'infer.error', requestId: 'r', error: failure },
      { type: 'infer.error', requestId: 'r', error: garbled },
      { type: 'cancel' },
    ];
  }
  // The fakes are up and idle: a reasoner reported down or busy is covered by the fail-fast tests.
  if (key.includes('"checkHealth"')) return [{ type: 'xstate.done.actor.readHealth', output: { state: 'up', load: 'idle' } }];
  if (isStreaming(key)) {
    const events: Array<{ type: string; [key: string]: unknown }> = [
      { type: 'infer.done', requestId: 'r', result: result('x') },
      { type: 'infer.error', requestId: 'r', error: failure },
      { type: 'cancel' },
    ];
    if (!snapshot.context.streamed) events.push({ type: 'infer.chunk', requestId: 'r', text: 'x' });
    return events;
  }
  if (key === '"systemStatus"') return [{ type: 'xstate.done.actor.describeStatus', output: 'status text' }];
  if (key.includes('"running"')) {
    const c = snapshot.context.classification;
    const document = c?.action === 'tools' && c.tool === 'document';
    return [
      {
        type: 'xstate.done.actor.runTool',
        output: document
          ? { ok: true, data: [{ id: 'd' }], summary: 'found', payload: '[]', sources: [{ id: 'd', title: 'D' }] }
          : { ok: false, reason: 'tool_not_configured', message: 'not configured' },
      },
    ];
  }
  if (key.includes('"phrasing"')) return [{ type: 'infer.done', requestId: 'r', result: result('phrased') }, { type: 'infer.error', requestId: 'r', error: failure }];
  return [];
}

const MESSAGES = { judged: 'tell me about it', status: 'system status', document: 'search documents for budget' };

const walks = Object.entries(MESSAGES).flatMap(([kind, text]) =>
  getSimplePaths(walkable, {
    input: {
      jobId: 'walk',
      conversationId: 'walk',
      text,
      mode: 'auto',
      roles: { classifier: 'small', reasoner: 'large' },
      modeBackend: null,
      fallbackToClassifier: true,
      sink,
      toolkit,
      supervisor: sink,
    },
    events: producible as never,
    serializeState: (snapshot) => {
      const s = snapshot as JobSnapshot;
      const c = s.context.classification;
      return JSON.stringify([s.value, s.context.streamed, s.context.classifierDown, c?.action, c?.action === "tools" ? c.tool : null, s.context.tool?.ok]);
    },
  })
    // Only whole stories: paths that end the job.
    .filter((path) => path.state.status === 'done')
    .map((path) => ({ kind, text, path })),
);

/** One path as a script: what each fake answers and when the client cancels. */
interface Script {
  classify: FakeReply;
  smallStream: FakeReply;
  phrase: FakeReply;
  reason: FakeReply;
  /** Cancel once the job is in this state (and, for a stream, has shown its first chunk when `afterChunk`). */
  cancelIn: string | null;
  afterChunk: boolean;
}

const LONG: FakeReply = { content: Array.from({ length: 300 }, () => 'y'), chunkDelayMs: 20 };

/** How a stream state behaves in a path, read from the events taken while in it. */
function streamReply(events: string[]): FakeReply {
  const chunk = events.includes('infer.chunk');
  if (events.includes('cancel')) return chunk ? LONG : { fault: 'hang_before_headers' };
  if (events.includes('infer.error')) return chunk ? { fault: 'drop_mid_stream', content: ['x'] } : { fault: 'http_500' };
  return { content: chunk ? ['x', 'y'] : [] };
}

function scriptOf(steps: Array<{ event: { type: string; [key: string]: unknown }; from: string }>): Script {
  const script: Script = {
    classify: { content: CLASSIFICATIONS.ready },
    smallStream: { content: ['x'] },
    phrase: { content: 'phrased' },
    reason: { content: ['x'] },
    cancelIn: null,
    afterChunk: false,
  };
  const inState = (match: (from: string) => boolean) => steps.filter((s) => match(s.from)).map((s) => s.event.type);
  const classify = steps.find((s) => s.from.includes('classify'));
  if (classify?.event.type === 'infer.done') script.classify = { content: CLASSIFICATIONS[String(classify.event.name)] };
  if (classify?.event.type === 'infer.error') {
    const error = classify.event.error as { reason: string };
    script.classify = error.reason === 'backend_protocol_error' ? { fault: 'malformed_sse' } : { fault: 'http_500' };
  }
  if (classify?.event.type === 'cancel') script.classify = { fault: 'hang_before_headers' };
  const direct = inState((f) => f.includes('"direct"'));
  const route = inState((f) => f.includes('"route"') && f.includes('"streaming"'));
  const fallback = inState((f) => f.includes('"fallback"'));
  if (direct.length > 0) script.smallStream = streamReply(direct);
  if (fallback.length > 0) script.smallStream = streamReply(fallback);
  if (route.length > 0) script.reason = streamReply(route);
  if (inState((f) => f.includes('"phrasing"')).includes('infer.error')) script.phrase = { fault: 'http_500' };
  const cancel = steps.find((s) => s.event.type === 'cancel');
  if (cancel) {
    script.cancelIn = cancel.from;
    script.afterChunk = steps.some((s) => s.event.type === 'infer.chunk' && s.from === cancel.from);
  }
  return script;
}

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;
const visited = new Map<string, string[]>();
let script: Script;

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  small.setDefault((body) => {
    if (classifiedText(body) !== null) return script.classify;
    if (!body.stream && lastUserText(body).startsWith('[request]')) return script.phrase;
    return script.smallStream;
  });
  large.setDefault(() => script.reason);
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-model-job-'));
  await seedDocuments(dataDir, [{ id: 'budget.md', title: 'Budget', body: 'The budget is 12 000 euros.' }]);
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    dataDir,
    deps: {
      inspect: (event: InspectionEvent) => {
        if (event.type !== '@xstate.snapshot') return;
        const id = (event.actorRef as AnyActorRef).id;
        if (!id.startsWith('job:')) return;
        const list = visited.get(id.slice(4)) ?? [];
        const key = JSON.stringify((event.snapshot as unknown as { value: unknown }).value);
        if (list.at(-1) !== key) list.push(key);
        visited.set(id.slice(4), list);
      },
    },
  });
}, 60_000);

afterAll(async () => {
  sink.stop();
  client?.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

describe(`job machine: ${walks.length} simple paths to an end, driven through the running gateway`, () => {
  it('covers every branch and every end', () => {
    const states = new Set(walks.flatMap((w) => w.path.steps.map((s) => stateKey(s.state as JobSnapshot))));
    for (const expected of ['classify', 'direct', 'systemStatus', 'tools', 'route', 'fallback', 'phrasing']) {
      expect([...states].some((key) => key.includes(expected)), expected).toBe(true);
    }
    // `clarify` and a ready `direct` answer pass through to `complete` and `done` in one step: seen by their events.
    const classified = new Set(walks.flatMap((w) => w.path.steps.map((s) => String((s.event as { name?: string }).name ?? ''))));
    for (const name of Object.keys(CLASSIFICATIONS)) expect(classified.has(name), name).toBe(true);
    const ends = new Set(walks.map((w) => stateKey(w.path.state as JobSnapshot)));
    expect(ends).toEqual(new Set(['"done"', '"failed"', '"cancelled"']));
  });

  for (const { kind, text, path } of walks) {
    const expected = path.steps.map((s) => stateKey(s.state as JobSnapshot)).filter((k, i, all) => all[i - 1] !== k);
    const steps = path.steps.slice(1).map((s, i) => ({ event: s.event as { type: string; [key: string]: unknown }, from: stateKey(path.steps[i]!.state as JobSnapshot) }));
    const label = steps.map((s) => (s.event.name ? `${s.event.type}(${String(s.event.name)})` : s.event.type.replace('xstate.done.actor.', 'done '))).join(' → ');
    it(`${kind}: ${label}`, async () => {
      script = scriptOf(steps);
      // A connection per path: the WebSocket rate limit is per connection.
      client?.close();
      client = await TestClient.connect(gateway.wsUrl);
      const { jobId } = await client.chat(text);
      if (script.cancelIn !== null) {
        const state = script.cancelIn;
        const deadline = Date.now() + 5_000;
        while (!(visited.get(jobId) ?? []).includes(state) || (script.afterChunk && !client.events(jobId).some((e) => e.event === 'result'))) {
          if (Date.now() > deadline) throw new Error(`job never reached ${state}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        client.send({ type: 'cancel', jobId });
      }
      const events = await client.finished(jobId);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(visited.get(jobId)).toEqual(expected);
      const end = expected.at(-1);
      expect(events.at(-1)?.event).toBe(end === '"done"' ? 'done' : end === '"failed"' ? 'error' : 'cancelled');
    });
  }
});
