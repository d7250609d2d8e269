import { getSimplePaths } from '@xstate/graph';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import type { InferenceRunEvent } from '../src/machines/inference-run-machine.js';
import { inferenceRunMachine } from '../src/machines/inference-run-machine.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { until } from './helpers/backend-actor.js';
import { request } from './helpers/requester.js';

/**
 * Model-based test of one backend slot: every simple path of the `inferenceRun` machine is generated with
 * @xstate/graph, turned into a script for the fake server and a requester, and driven against a real
 * backend actor; the states the real run child goes through must be the path's states.
 */

const noop = () => {};
// For the walk only: the run's parent messages have no parent to go to.
const walkable = inferenceRunMachine.provide({
  actors: { callBackend: fromCallback(noop) },
  actions: { reportActivity: noop, releaseCompleted: noop, releaseFailed: noop, releaseCancelled: noop },
});
const replyTo = createActor(fromCallback(noop)).start();
const error = { code: 'backend_unavailable', reason: 'backend_unavailable', retryable: true, message: 'x' };
const result = { content: 'a', toolCalls: [], finishReason: 'stop' };

/**
 * Events the system can produce on purpose in each state. Left out: `call.done` while draining — a response
 * that completes in the same instant its abort lands, a race no script can hit on demand.
 */
function producible(snapshot: { value: unknown }): InferenceRunEvent[] {
  if (snapshot.value === 'draining') return [{ type: 'call.failed', error }];
  return [{ type: 'call.firstByte', at: 0 }, { type: 'call.done', result, at: 0 }, { type: 'call.failed', error }, { type: 'cancel' }];
}

const paths = getSimplePaths(walkable, {
  input: { requestId: 'r', kind: 'stream', request: { messages: [] }, replyTo, enqueuedAt: 0 },
  events: producible as never,
  serializeState: (snapshot) => JSON.stringify(snapshot.value),
}).filter((path) => path.steps.length > 1 || Object.keys(walkable.root.states).length === 0);

/** The fake's reply, the request kind and the moment to cancel, read off a path's events. */
function scenario(events: string[]): { reply: FakeReply; kind: 'stream' | 'complete'; cancelAfter: 'start' | 'firstChunk' | null } {
  const firstByte = events.includes('call.firstByte');
  const cancelIndex = events.indexOf('cancel');
  const cancelAfter = cancelIndex < 0 ? null : firstByte && events.indexOf('call.firstByte') < cancelIndex ? 'firstChunk' : 'start';
  const long: FakeReply = { content: Array.from({ length: 200 }, () => 'x'), chunkDelayMs: 20 };
  if (cancelAfter === 'start') return { reply: { fault: 'hang_before_headers' }, kind: 'stream', cancelAfter };
  if (cancelAfter === 'firstChunk') return { reply: long, kind: 'stream', cancelAfter };
  if (events.includes('call.failed')) return { reply: { fault: firstByte ? 'drop_mid_stream' : 'http_500' }, kind: 'stream', cancelAfter };
  if (events.includes('call.done')) return firstByte
    ? { reply: { content: ['a', 'b', 'c'], chunkDelayMs: 10 }, kind: 'stream', cancelAfter }
    : { reply: { content: 'a' }, kind: 'complete', cancelAfter };
  return { reply: firstByte ? long : { fault: 'hang_before_headers' }, kind: 'stream', cancelAfter };
}

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});

describe('inferenceRun machine, walked against a real backend actor and the fake', () => {
  it('has generated paths covering every state', () => {
    const reached = new Set(paths.flatMap((p) => p.steps.map((step) => JSON.stringify(step.state.value))));
    expect([...reached].sort()).toEqual(
      ['"completed"', '"draining"', '"failed"', '"released"', '{"running":"streaming"}', '{"running":"waiting"}'].sort(),
    );
  });

  for (const path of paths) {
    const events = path.steps.slice(1).map((step) => step.event.type);
    const expected = path.steps.map((step) => JSON.stringify(step.state.value));
    it(`${events.join(' → ') || '(start)'}: ${expected.join(' → ')}`, async () => {
      const visited: string[] = [];
      const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', idleTimeoutMs: 2_000, firstByteTimeoutMs: 5_000 });
      const backend = createActor(provideBackendMachine({ client, probeTimeoutMs: 1_000 }), {
        input: { name: 'model', concurrency: 1, maxBackgroundWaitMs: 10_000, healthIntervalMs: 60_000 },
        inspect: (event) => {
          if (event.type !== '@xstate.snapshot' || !(event.actorRef as AnyActorRef).id.startsWith('run:')) return;
          const value = JSON.stringify((event.snapshot as unknown as { value: unknown }).value);
          if (visited.at(-1) !== value) visited.push(value);
        },
      }).start();

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
      // Wait for the path's last state, then give the run time to show any state the path does not have.
      await until(() => visited.length >= expected.length, 5_000, `states ${expected.join(' → ')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // A path that ends in a final state must be all the run did; one that stops midway is a prefix of it.
      const final = path.state.status === 'done';
      expect(final ? visited : visited.slice(0, expected.length)).toEqual(expected);
      backend.stop();
      fake.resetStats();
    });
  }
});

