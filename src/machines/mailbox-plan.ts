import type { AnyActorRef } from 'xstate';
import type { BackendReply, InferRequestEvent } from './backend-protocol.js';
import type { SlotRunEvent } from './inference-slot-machine.js';
import { queuePositions, takeNext, type RequestQueue } from './request-queue.js';

/** A request a slot is serving (running or draining). */
export interface RunningRequest {
  requestId: string;
  slot: number;
  replyTo: AnyActorRef;
  priority: InferRequestEvent['priority'];
}

/** The part of a backend's context the mailbox owns. */
export interface MailboxState {
  queue: RequestQueue;
  freeSlots: readonly number[];
  running: ReadonlyMap<string, RunningRequest>;
}

/** What a mailbox change decides: the new state, the requests to hand to slots, the notices to requesters. */
export interface MailboxPlan {
  state: MailboxState;
  runs: Array<{ slot: number; event: SlotRunEvent }>;
  notices: Array<{ to: AnyActorRef; event: BackendReply }>;
}

/**
 * Fills free slots from the queue and tells every waiting requester whose place changed. Pure: the machine
 * applies the plan with one assign and its sends, so each mailbox event is a single cheap transition.
 */
export function planDispatch(state: MailboxState, now: number, maxBackgroundWaitMs: number): MailboxPlan {
  const plan: MailboxPlan = { state, runs: [], notices: [] };
  const waiting = state.queue.foreground.length + state.queue.background.length;
  if (waiting === 0 || state.freeSlots.length === 0) return plan;

  const before = waiting > 1 ? queuePositions(state.queue, now, maxBackgroundWaitMs) : undefined;
  let queue = state.queue;
  const freeSlots = [...state.freeSlots];
  const running = new Map(state.running);
  const perfNow = performance.now();
  while (freeSlots.length > 0) {
    const taken = takeNext(queue, now, maxBackgroundWaitMs);
    if (!taken.next) break;
    queue = taken.queue;
    const { event, enqueuedAt } = taken.next;
    const slot = freeSlots.shift() as number;
    running.set(event.requestId, { requestId: event.requestId, slot, replyTo: event.replyTo, priority: event.priority });
    plan.runs.push({
      slot,
      event: {
        type: 'slot.run',
        requestId: event.requestId,
        kind: event.kind,
        request: event.request,
        replyTo: event.replyTo,
        enqueuedAt: perfNow - (now - enqueuedAt),
      },
    });
  }
  plan.state = { queue, freeSlots, running };

  if (queue.foreground.length + queue.background.length > 0) {
    const after = queuePositions(queue, now, maxBackgroundWaitMs);
    for (const entry of [...queue.foreground, ...queue.background]) {
      const { requestId, replyTo } = entry.event;
      const position = after.get(requestId);
      if (position !== undefined && before?.get(requestId) !== position) {
        plan.notices.push({ to: replyTo, event: { type: 'infer.queued', requestId, position } });
      }
    }
  }
  return plan;
}
