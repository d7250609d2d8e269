import { createActor, createMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { InferRequestEvent, Priority } from '../src/machines/backend-protocol.js';
import { EMPTY_QUEUE, enqueueRequest, positionOf, queueSize, removeRequest, takeNext, type RequestQueue } from '../src/machines/request-queue.js';

const ref = createActor(createMachine({}));
const request = (requestId: string, priority: Priority): InferRequestEvent => ({
  type: 'infer.request',
  requestId,
  priority,
  kind: 'complete',
  request: { messages: [] },
  replyTo: ref,
});

function drain(queue: RequestQueue, now: number, maxWait: number): string[] {
  const order: string[] = [];
  for (;;) {
    const taken = takeNext(queue, now, maxWait);
    if (!taken.next) return order;
    order.push(taken.next.event.requestId);
    queue = taken.queue;
  }
}

describe('RequestQueue', () => {
  it('serves foreground before background, FIFO within each', () => {
    let q = EMPTY_QUEUE;
    q = enqueueRequest(q, request('b1', 'background'), 0);
    q = enqueueRequest(q, request('f1', 'foreground'), 1);
    q = enqueueRequest(q, request('b2', 'background'), 2);
    q = enqueueRequest(q, request('f2', 'foreground'), 3);
    expect(drain(q, 5, 1000)).toEqual(['f1', 'f2', 'b1', 'b2']);
    expect(['f1', 'f2', 'b1', 'b2', 'gone'].map((id) => positionOf(q, id, 5, 1000))).toEqual([1, 2, 3, 4, undefined]);
  });

  it('serves background that waited past the aging limit before newer foreground, never before older foreground', () => {
    let q = EMPTY_QUEUE;
    q = enqueueRequest(q, request('f0', 'foreground'), 0);
    q = enqueueRequest(q, request('b1', 'background'), 10);
    q = enqueueRequest(q, request('f1', 'foreground'), 500);
    expect(drain(q, 1500, 1000)).toEqual(['f0', 'b1', 'f1']);
    expect(drain(q, 900, 1000)).toEqual(['f0', 'f1', 'b1']);
  });

  it('removes a waiting request and leaves the rest in order', () => {
    let q = EMPTY_QUEUE;
    for (const id of ['a', 'b', 'c']) q = enqueueRequest(q, request(id, 'foreground'), 0);
    const { queue, removed } = removeRequest(q, 'b');
    expect(removed?.event.requestId).toBe('b');
    expect(queueSize(queue)).toBe(2);
    expect(drain(queue, 0, 1000)).toEqual(['a', 'c']);
    expect(removeRequest(queue, 'zzz').removed).toBeUndefined();
  });
});
