import { getSimplePaths } from '@xstate/graph';
import { fromCallback, fromPromise, type SnapshotFrom } from 'xstate';
import { reactMachine, type ReactInput } from '../../src/machines/react-machine.js';
import { transitionCover, type CoverWalk } from './transition-cover.js';

/**
 * The ReAct machine's generated paths: the simple paths `test/model-react.test.ts` drives through the
 * running gateway, and the transition cover `test/model-machines.test.ts` drives against the loop actor
 * (adding what no script produces: a search that fails or throws, queue places).
 */

export type ReactSnapshot = SnapshotFrom<typeof reactMachine>;
export type WalkEvent = { type: string; name?: string; [key: string]: unknown };

const noop = (): void => {};
/** The loop with inert actors and nothing sent to a parent. */
export const walkableReactMachine = reactMachine.provide({
  actors: { infer: fromCallback(noop), runTool: fromPromise(() => new Promise(noop)) },
  actions: { forwardToParent: noop, forwardAnswer: noop, reportRound: noop },
});

const call = (name: string, args: object) => ({ id: `c-${name}`, type: 'function', function: { name, arguments: JSON.stringify(args) } });
const done = (name: string, content: string, toolCalls: unknown[]): WalkEvent => ({
  type: 'infer.done',
  requestId: 'r',
  name,
  result: { content, toolCalls, finishReason: toolCalls.length > 0 ? 'tool_calls' : 'stop' },
  timing: { queuedMs: 0, firstByteMs: 1, totalMs: 1 },
});
const failure: WalkEvent = { type: 'infer.error', requestId: 'r', name: 'error', error: { code: 'backend_unavailable', reason: 'backend_unavailable', retryable: true, message: 'x' } };
export const stateKey = (snapshot: ReactSnapshot): string => JSON.stringify(snapshot.value);
const found = { ok: true, data: [], summary: 's', payload: '[]', sources: [{ id: 'budget.md', title: 'Budget' }] };

/**
 * Events the running system can be made to produce, by state. Left out: a search that fails or times out
 * (the document store answers), and queue places (the fake reasoner is never busy). A final round's chunks
 * leave the state as it is, so its `infer.done` is scripted as a streamed answer.
 */
function producible(snapshot: ReactSnapshot): WalkEvent[] {
  const key = stateKey(snapshot);
  if (key === '"toolRound"') {
    return [
      done('search', '', [call('search', { query: 'budget' })]),
      done('unknownTool', '', [call('calendar', {})]),
      done('answer', 'An answer without searching.', []),
      failure,
    ];
  }
  if (key.includes('"calling"')) return [{ type: 'xstate.done.actor.runTool', output: found }];
  if (key === '"finalRound"') return [done('final', 'x', []), failure];
  return [];
}

export const reactInput: ReactInput = { jobId: 'walk', backend: 'large', messages: [{ role: 'user', content: 'x' }], text: 'x' };
const key = (s: ReactSnapshot): string => JSON.stringify([s.value, s.context.round, s.context.calls.length]);

/** The simple paths to an end that `test/model-react.test.ts` drives through the gateway. */
export function gatewayReactWalks() {
  return getSimplePaths(walkableReactMachine, {
    input: reactInput,
    events: producible as never,
    serializeState: (snapshot) => key(snapshot as ReactSnapshot),
  }).filter((path) => path.state.status === 'done');
}

/** Every event the loop can receive, by state: its model's replies, its searches' outcomes, queue places. */
function anyEvent(snapshot: ReactSnapshot): WalkEvent[] {
  if (snapshot.status !== 'active') return [];
  const events: WalkEvent[] = [{ type: 'infer.queued', requestId: 'r', position: 1 }];
  const key = stateKey(snapshot);
  if (key === '"toolRound"') events.push(...producible(snapshot));
  if (key.includes('"calling"')) {
    events.push({ type: 'xstate.done.actor.runTool', output: found });
    events.push({ type: 'xstate.done.actor.runTool', output: { ok: false, reason: 'tool_timeout', message: 'the search took too long' } });
    events.push({ type: 'xstate.done.actor.runTool', output: { ok: false, reason: 'bad_params', message: 'no query' } });
    events.push({ type: 'xstate.error.actor.runTool', error: new Error('bug') });
  }
  if (key === '"finalRound"') events.push({ type: 'infer.chunk', requestId: 'r', text: 'x' }, done('final', 'x', []), failure);
  return events;
}

/** Paths that take every transition of the ReAct machine. */
export function reactCoverWalks(): CoverWalk[] {
  return transitionCover(walkableReactMachine, { input: reactInput, events: anyEvent as never, key: (s) => JSON.stringify([key(s as ReactSnapshot), s.status]) });
}
