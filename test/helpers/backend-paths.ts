import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import { createActor, fromCallback, type SnapshotFrom } from 'xstate';
import type { BackendEvent, BackendMachineInput } from '../../src/machines/backend-machine.js';
import type { HealthMachineInput, MailboxView } from '../../src/machines/health-machine.js';
import { afterEvents, transitionCover, type CoverWalk } from './transition-cover.js';
import { inertRequester, walkableBackendMachine, walkableHealthMachine } from './walkable-backend.js';

/**
 * The backend mailbox's and its health machine's generated paths: the ones `test/model-backend.test.ts`
 * drives against a real backend actor and the fake server, and the transition covers
 * `test/model-machines.test.ts` drives against the actors (adding what the fake cannot be made to do
 * on cue: first bytes and progress, failed calls, health changes and a missing model, a requester that
 * is gone, a probe that fails while a stream is alive).
 */

export type BackendSnapshot = SnapshotFrom<typeof walkableBackendMachine>;
export type HealthSnapshot = SnapshotFrom<typeof walkableHealthMachine>;

const MAX_REQUESTS = 3;

/** What the mailbox is: its state, each slot's status and request, who waits. The walk and the check use the same. */
export const mailboxKey = (snapshot: BackendSnapshot): string =>
  JSON.stringify([
    snapshot.value,
    snapshot.context.slots.map((slot) => (slot.status === 'idle' ? 'idle' : `${slot.status}:${slot.requestId}`)),
    snapshot.context.queue.foreground.map((entry) => entry.event.requestId),
  ]);

const error = { code: 'cancelled', reason: 'cancelled', retryable: false, message: 'cancelled' };
const request = (requestId: string, replyTo = inertRequester): BackendEvent => ({
  type: 'infer.request',
  requestId,
  priority: 'foreground',
  kind: 'stream',
  request: { messages: [] },
  replyTo,
});

/**
 * The events the system can be made to produce: a request arrives; a running request completes or is
 * cancelled (its slot drains); a draining request's abort settles; a waiting request is cancelled.
 */
function mailboxEvents(snapshot: BackendSnapshot): BackendEvent[] {
  const { context } = snapshot;
  const events: BackendEvent[] = [];
  // An abort settles at once (the client destroys its socket): nothing else can happen before it.
  const draining = context.slots.flatMap((slot, index) =>
    slot.status === 'draining' ? [{ type: 'call.failed' as const, slot: index, requestId: slot.requestId, error }] : [],
  );
  if (draining.length > 0) return draining;
  const n = context.queue.nextSeq;
  if (n < MAX_REQUESTS) events.push(request(`r${n}`));
  context.slots.forEach((slot, index) => {
    if (slot.status === 'running') {
      events.push({ type: 'call.done', slot: index, requestId: slot.requestId, result: { content: 'ok', toolCalls: [], finishReason: 'stop' }, at: 0 });
      events.push({ type: 'infer.cancel', requestId: slot.requestId });
    }
  });
  for (const entry of context.queue.foreground) events.push({ type: 'infer.cancel', requestId: entry.event.requestId });
  return events;
}

export const backendInput = (concurrency: number): BackendMachineInput => ({ name: 'walk', concurrency, maxBackgroundWaitMs: 60_000, healthIntervalMs: 60_000 });

/** The simple paths `test/model-backend.test.ts` drives against a real backend actor and the fake. */
export function mailboxPaths(concurrency: number) {
  return getSimplePaths(walkableBackendMachine, {
    input: backendInput(concurrency),
    events: mailboxEvents as never,
    serializeState: (snapshot) => `${mailboxKey(snapshot as BackendSnapshot)}${(snapshot as BackendSnapshot).context.queue.nextSeq}`,
  });
}

/** A requester that stopped before its request arrived: the mailbox serves nothing for it. */
const goneRequester = createActor(fromCallback(() => {}));
goneRequester.start();
goneRequester.stop();

/** Everything a mailbox can receive: the above, and first bytes, progress, failures, health changes, a gone requester. */
function anyMailboxEvent(snapshot: BackendSnapshot): BackendEvent[] {
  const { context } = snapshot;
  const events = mailboxEvents(snapshot);
  if (context.slots.some((slot) => slot.status === 'draining')) return events;
  // Accepting and refusing transitions alike must leave a gone requester alone.
  if (context.queue.nextSeq < MAX_REQUESTS) events.push(request('gone', goneRequester));
  context.slots.forEach((slot, index) => {
    if (slot.status !== 'running') return;
    events.push({ type: 'call.firstByte', slot: index, requestId: slot.requestId, at: 1 });
    events.push({ type: 'call.progress', slot: index, requestId: slot.requestId } as BackendEvent);
    events.push({ type: 'call.failed', slot: index, requestId: slot.requestId, error: { ...error, code: 'backend_unavailable', reason: 'backend_unavailable' } });
  });
  events.push(context.downReason === null ? { type: 'health.down', reason: 'model_missing' } : { type: 'health.up', healthMs: 5 });
  return events;
}

/** Paths that take every transition of the mailbox, with one slot and with two. */
export function mailboxCoverWalks(): CoverWalk[] {
  return [1, 2].flatMap((concurrency) =>
    transitionCover(walkableBackendMachine, {
      input: backendInput(concurrency),
      events: anyMailboxEvent as never,
      key: (s) => `${mailboxKey(s as BackendSnapshot)}${(s as BackendSnapshot).context.queue.nextSeq}${(s as BackendSnapshot).context.downReason}`,
    }),
  );
}

// ---------------------------------------------------------------- health

export const healthValue = (snapshot: HealthSnapshot): string => JSON.stringify(snapshot.value);
const probe = {
  fast: { type: 'xstate.done.actor.probe', output: { healthMs: 1, statusReport: null } },
  slow: { type: 'xstate.done.actor.probe', output: { healthMs: 500, statusReport: null } },
  failed: { type: 'xstate.error.actor.probe', error: { reason: 'backend_unavailable' } },
};

function healthEvents(snapshot: HealthSnapshot): Array<{ type: string; [key: string]: unknown }> {
  const health = healthValue(snapshot);
  if (health.includes('probing') || health === '"unknown"') {
    // A slow probe can only make the rule ask for a ping once the baseline has settled.
    return snapshot.context.measures.samples >= 5 ? [probe.fast, probe.slow, probe.failed] : [probe.fast, probe.failed];
  }
  if (health === '{"up":"waiting"}') return [{ type: 'xstate.after.healthInterval.health.up.waiting' }];
  if (health === '{"down":"waiting"}') return [{ type: 'xstate.after.healthInterval.health.down.waiting' }];
  if (health === '{"up":"pinging"}') return [{ type: 'ping.measured', latencyMs: 50 }, { type: 'ping.failed' }];
  return [];
}

export const idleView = (): MailboxView => ({ busySlots: 0, waiting: 0, lastActivityAt: 0 });
export const healthInput = (view: () => MailboxView, now: () => number): HealthMachineInput => ({ name: 'walk', healthIntervalMs: 60_000, now, backend: inertRequester, view });
const healthKey = (s: HealthSnapshot): string => `${healthValue(s)}${Math.min(s.context.measures.samples, 6)}`;

/** The shortest paths `test/model-backend.test.ts` drives against a real backend's health child and the fake. */
export function healthPaths() {
  return getShortestPaths(walkableHealthMachine, {
    input: healthInput(idleView, Date.now),
    events: healthEvents as never,
    serializeState: (snapshot) => healthKey(snapshot as HealthSnapshot),
  });
}

/** Everything health can receive: the above, and proof of life from an answer (`health.alive`). */
function anyHealthEvent(snapshot: HealthSnapshot): Array<{ type: string; [key: string]: unknown }> {
  const health = healthValue(snapshot);
  const events = [...healthEvents(snapshot), ...afterEvents(snapshot)];
  if (health === '"unknown"' || health.includes('down')) events.push({ type: 'health.alive' });
  return events;
}

/** Paths that take every transition of the health machine: with an idle mailbox, and with a stream that made progress just now. */
export function healthCoverWalks(): CoverWalk[] {
  const now = () => Date.parse('2026-11-29T12:00:00Z');
  const streaming = (): MailboxView => ({ busySlots: 1, waiting: 0, lastActivityAt: now() });
  return [idleView, streaming].flatMap((view) =>
    transitionCover(walkableHealthMachine, { input: healthInput(view, now), events: anyHealthEvent as never, key: (s) => healthKey(s as HealthSnapshot) }),
  );
}
