import { getSimplePaths } from '@xstate/graph';
import { createActor, fromCallback, fromPromise, type SnapshotFrom } from 'xstate';
import { jobMachine, type JobInput } from '../../src/machines/job-machine.js';
import { loadPrompts } from '../../src/prompts/load-prompts.js';
import { testToolkit } from './job-toolkit.js';
import { afterEvents, transitionCover, type CoverWalk } from './transition-cover.js';

/**
 * The job machine's generated paths: the simple paths `test/model-job.test.ts` drives through the running
 * gateway, and the transition cover `test/model-machines.test.ts` drives against the job actor with
 * scripted actors (the events no gateway script can produce: a failing store, drafts, a reasoner that
 * is down or busy, the ReAct branch, heartbeats). `test/graph-coverage.test.ts` checks that together they
 * take every transition.
 */

export type JobSnapshot = SnapshotFrom<typeof jobMachine>;
type WalkEvent = { type: string; [key: string]: unknown };

const prompts = await loadPrompts(undefined, { name: 'Eid', locale: 'en' });
export const toolkit = testToolkit(prompts);

const noop = (): void => {};
/** The job machine with inert actors: nothing runs, nothing is reported (paths are walked and replayed on it). */
export const walkableJobMachine = jobMachine.provide({
  actors: {
    loadConversation: fromPromise(() => new Promise(noop)),
    infer: fromCallback(noop),
    runTool: fromPromise(() => new Promise(noop)),
    saveDraft: fromPromise(() => new Promise(noop)),
    clearDraft: fromPromise(() => new Promise(noop)),
    describeStatus: fromPromise(() => new Promise(noop)),
    readHealth: fromPromise(() => new Promise(noop)),
    // The ReAct loop stands still too: its outcome is the walk's `xstate.done.actor.react`.
    react: fromPromise(() => new Promise(noop)) as never,
  },
  actions: { reportFinished: noop },
});
export const sink = createActor(fromCallback(noop)).start();

/** What the classifier may answer, by name: the walk offers each, the gateway script replays the chosen one. */
export const CLASSIFICATIONS: Record<string, string> = {
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
export const stateKey = (snapshot: JobSnapshot): string => JSON.stringify(snapshot.value);
const isStreaming = (key: string): boolean => key.includes('"streaming"') || key.includes('"fallback"') || key.includes('modeStream');

/**
 * Events the running gateway can be made to produce, by state. Left out, because no script can produce
 * them on demand: a store that fails (errors of loadConversation, describeStatus), a tool
 * that times out or throws, and drafts (calendar is not configured here, so no draft is ever made).
 */
function producible(snapshot: JobSnapshot): WalkEvent[] {
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
    const events: WalkEvent[] = [
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

/** The messages the gateway paths send, by kind. */
export const MESSAGES = { judged: 'tell me about it', status: 'system status', document: 'search documents for budget' };

export function jobInput(text: string, overrides: Partial<JobInput> = {}): JobInput {
  return {
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
    ...overrides,
  };
}

/** The simple paths to an end that `test/model-job.test.ts` drives through the gateway, with their message. */
export function gatewayJobWalks() {
  return Object.entries(MESSAGES).flatMap(([kind, text]) =>
    getSimplePaths(walkableJobMachine, {
      input: jobInput(text),
      events: producible as never,
      serializeState: (snapshot) => {
        const s = snapshot as JobSnapshot;
        const c = s.context.classification;
        return JSON.stringify([s.value, s.context.streamed, s.context.classifierDown, c?.action, c?.action === 'tools' ? c.tool : null, s.context.tool?.ok]);
      },
    })
      // Only whole stories: paths that end the job.
      .filter((path) => path.state.status === 'done')
      .map((path) => ({ kind, text, input: jobInput(text), path })),
  );
}

const CLASSIFIER_ANSWERS = {
  ...CLASSIFICATIONS,
  status: JSON.stringify({ action: 'systemStatus' }),
  draft: JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_draft', params: { title: 'Dentist' } }),
  modelConfirms: JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_confirmed', params: {} }),
};
const tool = {
  failed: { ok: false, reason: 'tool_failed', message: 'the server failed' },
  refused: { ok: false, reason: 'tool_not_configured', message: 'not configured' },
  empty: { ok: true, data: [], summary: 'nothing found', payload: '[]', sources: [] },
  found: { ok: true, data: [{ id: 'd' }], summary: 'found', payload: '[]', sources: [{ id: 'd', title: 'D' }] },
};
const storeDown = { name: 'StoreError', message: 'store unavailable', reason: 'store_unavailable' };

/** Every event a job can receive, by state: what its actors, the backend, the clock and the client send. */
function anyEvent(snapshot: JobSnapshot): WalkEvent[] {
  const key = stateKey(snapshot);
  const events: WalkEvent[] = [...afterEvents(snapshot)];
  const done = (id: string, output: unknown) => ({ type: `xstate.done.actor.${id}`, output });
  const error = (id: string) => ({ type: `xstate.error.actor.${id}`, error: storeDown });
  const inferDone = (content: string) => ({ type: 'infer.done', requestId: 'r', result: result(content), timing: { queuedMs: 0, firstByteMs: 1, totalMs: 1 } });
  if (snapshot.status !== 'active') return [];
  if (key === '"ack"') {
    events.push(done('loadConversation', { history: [], draft: null }), done('loadConversation', { history: [], draft: { title: 'Dentist' } }), error('loadConversation'));
  } else if (key.includes('classify')) {
    events.push(...Object.values(CLASSIFIER_ANSWERS).map(inferDone));
    events.push({ type: 'infer.error', requestId: 'r', error: failure }, { type: 'infer.error', requestId: 'r', error: garbled });
    events.push({ type: 'infer.queued', requestId: 'r', position: 2 });
  } else if (key.includes('"checkHealth"')) {
    for (const health of [{ state: 'up', load: 'idle' }, { state: 'up', load: 'busy' }, { state: 'down', load: 'idle', reason: 'backend_unavailable' }]) events.push(done('readHealth', health));
    events.push(error('readHealth'));
  } else if (key.includes('"react"')) {
    events.push({ type: 'infer.chunk', requestId: 'react', text: 'x' });
    events.push({ type: 'react.round', round: 1, final: false, tools: ['search'], modelMs: 1, totalMs: 1, ignoredCalls: 0 });
    events.push(done('react', { ok: true, sources: [] }), done('react', { ok: false, reason: 'backend_unavailable', code: 'backend_unavailable', message: null }), error('react'));
  } else if (isStreaming(key)) {
    events.push({ type: 'infer.chunk', requestId: 'r', text: 'x' }, inferDone(''), { type: 'infer.error', requestId: 'r', error: failure });
  } else if (key === '"systemStatus"') {
    events.push(done('describeStatus', 'status text'), error('describeStatus'));
  } else if (key === '"cancelDraft"' || key.includes('"clearingDraft"')) {
    events.push(done('clearDraft', undefined), error('clearDraft'));
  } else if (key.includes('"running"')) {
    events.push(...Object.values(tool).map((output) => done('runTool', output)), error('runTool'));
  } else if (key.includes('"savingDraft"')) {
    events.push(done('saveDraft', undefined), error('saveDraft'));
  } else if (key.includes('"phrasing"')) {
    events.push(inferDone('phrased'), { type: 'infer.error', requestId: 'r', error: failure });
  }
  events.push({ type: 'cancel' });
  return events;
}

const coverKey = (s: JobSnapshot): string => {
  const c = s.context.classification;
  return JSON.stringify([
    s.value,
    s.status,
    s.context.streamed,
    s.context.classifierDown,
    s.context.draft !== null,
    c?.action,
    c?.action === 'tools' ? `${c.tool}.${c.operation}` : null,
    s.context.answer.trim() !== '',
  ]);
};

/**
 * Paths that take every transition of the job machine: messages the classifier judges (with a
 * reasoner that calls tools natively and one that does not), the user's yes and no to a draft (only
 * pre-route confirms or drops one), the system status, and a chat mode.
 */
export function jobCoverWalks(): CoverWalk[] {
  const inputs = [
    jobInput(MESSAGES.judged),
    jobInput(MESSAGES.judged, { toolkit: { ...toolkit, reasonerTools: true } }),
    jobInput(MESSAGES.status),
    jobInput('yes'),
    jobInput('no'),
    // The real pre-route rules confirm only while a draft waits; the machine still refuses a toolkit's
    // confirmation without one (its guard isConfirmWithoutDraft): a toolkit that always confirms reaches it.
    jobInput('yes', { toolkit: { ...toolkit, preRoute: () => ({ action: 'confirmDraft' }) } }),
    jobInput(MESSAGES.judged, { mode: 'daily', modeBackend: 'small' }),
  ];
  return inputs.flatMap((input) => transitionCover(walkableJobMachine, { input, events: anyEvent as never, key: coverKey as never }));
}

