import type { InferRequestEvent } from './backend-protocol.js';

/** A request waiting for a slot. */
export interface QueuedRequest {
  event: InferRequestEvent;
  enqueuedAt: number;
  /** Arrival order across both lines; clocks tie, this does not. */
  seq: number;
}

/**
 * The mailbox's waiting line as immutable data: FIFO within two priorities, foreground first, with aging —
 * a background request that has waited `maxBackgroundWaitMs` is served before any foreground request that
 * arrived after it. Immutable so that a machine snapshot is a value (graph walks and the inspector see
 * exactly what was), at O(n) per change, which is nothing next to one inference.
 */
export interface RequestQueue {
  readonly foreground: readonly QueuedRequest[];
  readonly background: readonly QueuedRequest[];
  readonly nextSeq: number;
}

export const EMPTY_QUEUE: RequestQueue = { foreground: [], background: [], nextSeq: 0 };

export function queueSize(queue: RequestQueue): number {
  return queue.foreground.length + queue.background.length;
}

export function enqueueRequest(queue: RequestQueue, event: InferRequestEvent, now: number): RequestQueue {
  const entry: QueuedRequest = { event, enqueuedAt: now, seq: queue.nextSeq };
  const nextSeq = queue.nextSeq + 1;
  return event.priority === 'foreground'
    ? { ...queue, nextSeq, foreground: [...queue.foreground, entry] }
    : { ...queue, nextSeq, background: [...queue.background, entry] };
}

/** Removes a waiting request; `removed` is undefined when it was not waiting. */
export function removeRequest(queue: RequestQueue, requestId: string): { queue: RequestQueue; removed?: QueuedRequest } {
  for (const priority of ['foreground', 'background'] as const) {
    const line = queue[priority];
    const index = line.findIndex((entry) => entry.event.requestId === requestId);
    if (index >= 0) {
      return { queue: { ...queue, [priority]: line.toSpliced(index, 1) }, removed: line[index] };
    }
  }
  return { queue };
}

/** Whether the head of the background line is served before the head of the foreground line at `now`. */
function backgroundFirst(queue: RequestQueue, fi: number, bi: number, now: number, maxBackgroundWaitMs: number): boolean {
  const front = queue.foreground[fi];
  const back = queue.background[bi];
  if (back === undefined) return false;
  if (front === undefined) return true;
  return now - back.enqueuedAt >= maxBackgroundWaitMs && back.seq < front.seq;
}

/** Takes the request to serve next. */
export function takeNext(queue: RequestQueue, now: number, maxBackgroundWaitMs: number): { queue: RequestQueue; next?: QueuedRequest } {
  if (queueSize(queue) === 0) return { queue };
  if (backgroundFirst(queue, 0, 0, now, maxBackgroundWaitMs)) {
    return { queue: { ...queue, background: queue.background.slice(1) }, next: queue.background[0] };
  }
  return { queue: { ...queue, foreground: queue.foreground.slice(1) }, next: queue.foreground[0] };
}

/** Every waiting request in the order they would be served if nothing else arrived. */
export function servingOrder(queue: RequestQueue, now: number, maxBackgroundWaitMs: number): QueuedRequest[] {
  const order: QueuedRequest[] = [];
  let fi = 0;
  let bi = 0;
  while (fi < queue.foreground.length || bi < queue.background.length) {
    const entry = backgroundFirst(queue, fi, bi, now, maxBackgroundWaitMs) ? queue.background[bi++] : queue.foreground[fi++];
    if (entry !== undefined) order.push(entry);
  }
  return order;
}

/** A waiting request's 1-based place in the order requests would be served if nothing else arrived. */
export function positionOf(queue: RequestQueue, requestId: string, now: number, maxBackgroundWaitMs: number): number | undefined {
  let fi = 0;
  let bi = 0;
  let position = 0;
  while (fi < queue.foreground.length || bi < queue.background.length) {
    const entry = backgroundFirst(queue, fi, bi, now, maxBackgroundWaitMs) ? queue.background[bi++] : queue.foreground[fi++];
    position++;
    if (entry?.event.requestId === requestId) return position;
  }
  return undefined;
}
