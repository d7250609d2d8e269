import { getSimplePaths } from '@xstate/graph';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import { inferenceSlotMachine, type SlotEvent } from '../src/machines/inference-slot-machine.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { until } from './helpers/backend-actor.js';
import { request } from './helpers/requester.js';

/**
 * Model-based test of one backend slot: every simple path of the `inferenceSlot` machine through one
 * request is generated with @xstate/graph, turned into a script for the fake server and a requester, and
 * driven against a real backend actor; the states the real slot goes through must be the path's states.
 */

const noop = () => {};
// For the walk only: the slot's parent messages have no parent to go to.
const walkable = inferenceSlotMachine.provide({
  actors: { callBackend: fromCallback(noop) },
  actions: { reportActivity: noop, releaseCompleted: noop, releaseFailed: noop, releaseCancelled: noop },
});
const replyTo = createActor(fromCallback(noop)).start();
const error = { code: 'backend_unavailable', reason: 'backend_unavailable', retryable: true, message: 'x' };
const result = { content: 'a', toolCalls: [], finishReason: 'stop' };
const requestId = 'r';

type WalkSnapshot = { value: unknown; context: { served: number } };

/**
 * Events the system can produce on purpose, for one request per path. Left out: `call.done` while
 * draining — a response that completes in the same instant its abort lands, a race no script can hit on
 * demand — and the `drainGrace` timeout, which only a client that never settles would reach.
 */
function producible(snapshot: WalkSnapshot): SlotEvent[] {
  if (snapshot.value === 'idle') {
    return snapshot.context.served === 0
      ? [{ type: 'slot.run', requestId, kind: 'stream', request: { messages: [] }, replyTo, enqueuedAt: 0 }]
      : [];
  }
  if (snapshot.value === 'draining') return [{ type: 'call.failed', requestId, error }];
  return [
    { type: 'call.firstByte', requestId, at: 0 },
    { type: 'call.done', requestId, result, at: 0 },
    { type: 'call.failed', requestId, error },
    { type: 'slot.cancel', requestId },
  ];
}

const paths = getSimplePaths(walkable, {
  input: { slot: 0 },
  events: producible as never,
  serializeState: (snapshot) => JSON.stringify([snapshot.value, (snapshot as unknown as WalkSnapshot).context.served]),
}).filter((path) => path.steps.length > 2);

/** The fake's reply, the request kind and the moment to cancel, read off a path's events. */
function scenario(events: string[]): { reply: FakeReply; kind: 'stream' | 'complete'; cancelAfter: 'start' | 'firstChunk' | null } {
  const firstByte = events.includes('call.firstByte');
  const cancelIndex = events.indexOf('slot.cancel');
  const cancelAfter = cancelIndex < 0 ? null : firstByte && events.indexOf('call.firstByte') < cancelIndex ? 'firstChunk' : 'start';
  const long: FakeReply = { content: Array.from({ length: 200 }, () => 'x'), chunkDelayMs: 20 };
  if (cancelAfter === 'start') return { reply: { fault: 'hang_before_headers' }, kind: 'stream', cancelAfter };
  if (cancelAfter === 'firstChunk') return { reply: long, kind: 'stream', cancelAfter };
  if (events.includes('call.failed')) return { reply: { fault: firstByte ? 'drop_mid_stream' : 'http_500' }, kind: 'stream', cancelAfter };
  if (events.includes('call.done')) {
    return firstByte
      ? { reply: { content: ['a', 'b', 'c'], chunkDelayMs: 10 }, kind: 'stream', cancelAfter }
      : { reply: { content: 'a' }, kind: 'complete', cancelAfter };
  }
  return { reply: firstByte ? long : { fault: 'hang_before_headers' }, kind: 'stream', cancelAfter };
}

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});

describe('inferenceSlot machine, walked against a real backend actor and the fake', () => {
  it('has generated paths covering every state and every way back to idle', () => {
    const reached = new Set(paths.flatMap((p) => p.steps.map((step) => JSON.stringify(step.state.value))));
    expect([...reached].sort()).toEqual(['"draining"', '"idle"', '{"running":"streaming"}', '{"running":"waiting"}'].sort());
    const endings = paths.filter((p) => p.state.value === 'idle').map((p) => p.steps.at(-1)?.event.type);
    expect(new Set(endings)).toEqual(new Set(['call.done', 'call.failed']));
  });

  for (const path of paths) {
    const events = path.steps.slice(1).map((step) => step.event.type);
    const expected = path.steps.map((step) => JSON.stringify(step.state.value));
    it(`${events.join(' → ')}: ${expected.join(' → ')}`, async () => {
      const visited: string[] = [];
      const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', idleTimeoutMs: 2_000, firstByteTimeoutMs: 5_000 });
      const backend = createActor(provideBackendMachine({ client, probeTimeoutMs: 1_000 }), {
        input: { name: 'model', concurrency: 1, maxBackgroundWaitMs: 10_000, healthIntervalMs: 60_000 },
        inspect: (event) => {
          if (event.type !== '@xstate.snapshot' || (event.actorRef as AnyActorRef).id !== 'slot:0') return;
          const value = JSON.stringify((event.snapshot as unknown as { value: unknown }).value);
          if (visited.at(-1) !== value) visited.push(value);
        },
      }).start();
      visited.splice(0, visited.length, '"idle"');

      const { reply, kind, cancelAfter } = scenario(events);
      fake.setDefault(reply);
      const requester = request(backend, 'model path', { kind });
      if (cancelAfter === 'start') {
        await until(() => fake.chatRequests.length > 0, 2_000, 'request at the fake');
        requester.cancel();
      } else if (cancelAfter === 'firstChunk') {
        await until(() => requester.text().length > 0, 2_000, 'first chunk');
        requester.cancel();
      }
      // Wait for the path's last state, then give the slot time to show any state the path does not have.
      await until(() => visited.length >= expected.length, 5_000, `states ${expected.join(' → ')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // A path back to idle must be all the slot did; one that stops midway is a prefix of it.
      const complete = path.state.value === 'idle';
      expect(complete ? visited : visited.slice(0, expected.length)).toEqual(expected);
      backend.stop();
      fake.resetStats();
    });
  }
});
