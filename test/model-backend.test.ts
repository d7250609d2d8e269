import { createActor, SimulatedClock, type AnyActorRef } from 'xstate';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import type { BackendEvent } from '../src/machines/backend-machine.js';
import type { BackendReply } from '../src/machines/backend-protocol.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { until } from './helpers/backend-actor.js';
import { request, type TestRequester } from './helpers/requester.js';
import { healthPaths as shortestHealthPaths, healthValue, mailboxKey, mailboxPaths, type BackendSnapshot, type HealthSnapshot } from './helpers/backend-paths.js';

/**
 * Model-based tests of the backend machine and its health sub-machine: paths are generated from the
 * machines with @xstate/graph (`helpers/backend-paths.ts`, shared with the graph coverage test) and
 * each one is driven against a real backend actor talking to the fake.
 */

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});

function realBackend(
  concurrency: number,
  healthIntervalMs: number,
  onHealth?: (snapshot: HealthSnapshot) => void,
  onBackend?: (snapshot: BackendSnapshot) => void,
  clock?: SimulatedClock,
) {
  const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', firstByteTimeoutMs: 5_000 });
  const now = clock ? () => clock.now() : undefined;
  const actor = createActor(provideBackendMachine({ client, model: 'fake-model', probeTimeoutMs: 1_000, ...(now ? { now } : {}) }), {
    ...(clock ? { clock } : {}),
    input: { name: 'model', concurrency, maxBackgroundWaitMs: 60_000, healthIntervalMs, ...(now ? { now } : {}) },
    inspect: (event) => {
      if (event.type !== '@xstate.snapshot') return;
      const id = (event.actorRef as AnyActorRef).id;
      if (onHealth && id === 'health') onHealth(event.snapshot as HealthSnapshot);
      if (onBackend && (event.actorRef as AnyActorRef).sessionId === event.rootId) onBackend(event.snapshot as BackendSnapshot);
    },
  });
  onTestFinished(() => {
    actor.stop();
  });
  return actor;
}

// ---------------------------------------------------------------- mailbox

for (const concurrency of [1, 2]) {
  const paths = mailboxPaths(concurrency);

  describe(`mailbox with concurrency ${concurrency}: ${paths.length} simple paths`, () => {
    it('reaches every state and drains slots', () => {
      const states = new Set(paths.flatMap((p) => p.steps.map((s) => String(s.state.value))));
      expect([...states].sort()).toEqual(concurrency === 1 ? ['idle', 'saturated'] : ['idle', 'saturated', 'serving']);
      const drained = paths.some((p) => p.steps.some((s) => (s.state as BackendSnapshot).context.slots.some((slot) => slot.status === 'draining')));
      expect(drained).toBe(true);
    });

    it('drives each path against the real actor and the fake', async () => {
      for (const path of paths) {
        // Each request is held at the fake until the path completes it (or cancels it).
        const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
        let allOpen = false;
        const gate = (id: string) => {
          let entry = gates.get(id);
          if (!entry) {
            if (allOpen) return { open: () => {}, opened: Promise.resolve() };
            let open!: () => void;
            const opened = new Promise<void>((resolve) => (open = resolve));
            entry = { open, opened };
            gates.set(id, entry);
          }
          return entry;
        };
        fake.setDefault(async (body): Promise<FakeReply> => {
          await gate(String(body.messages.at(-1)?.content)).opened;
          return { content: ['ok'] };
        });
        // Every state the real mailbox passes through, in order: a slot may drain faster than anyone polls.
        const seen: string[] = [];
        const actor = realBackend(concurrency, 60_000, undefined, (snapshot) => {
          const key = mailboxKey(snapshot);
          if (seen.at(-1) !== key) seen.push(key);
        }).start();
        let cursor = 0;
        const requesters = new Map<string, TestRequester>();
        const terminalOf = async (id: string): Promise<BackendReply['type'] | undefined> => (await requesters.get(id)?.terminal)?.type;
        for (const step of path.steps) {
          const event = step.event as BackendEvent | { type: 'xstate.init' };
          if (event.type === 'infer.request') {
            requesters.set(event.requestId, request(actor, event.requestId, { requestId: event.requestId }));
          } else if (event.type === 'call.done') {
            gate(event.requestId).open();
            expect(await terminalOf(event.requestId)).toBe('infer.done');
          } else if (event.type === 'infer.cancel') {
            // A running request must be at the fake before its cancel can be seen there as an abort.
            const running = actor.getSnapshot().context.slots.some((s) => s.status !== 'idle' && s.requestId === event.requestId);
            if (running) await until(() => fake.chatRequests.some((r) => r.body?.messages.at(-1)?.content === event.requestId), 2_000, 'request at the fake');
            requesters.get(event.requestId)?.cancel();
            expect(await terminalOf(event.requestId)).toBe('infer.cancelled');
          }
          // `call.failed` of a draining slot is the abort settling: nothing to do but wait for it.
          const expected = mailboxKey(step.state as BackendSnapshot);
          await until(() => seen.indexOf(expected, cursor) >= 0, 2_000, `${expected} after ${event.type}`);
          cursor = seen.indexOf(expected, cursor);
        }
        allOpen = true;
        for (const g of gates.values()) g.open();
        await Promise.all([...requesters.values()].map((r) => r.terminal));
        await until(() => actor.getSnapshot().value === 'idle', 2_000, 'idle at the end');
        actor.stop();
        await until(() => fake.concurrent === 0, 2_000, 'the fake to see every response end');
        // Requests cancelled while they waited never reached the server; the server never saw more than `concurrency`.
        const cancelledWaiting = path.steps.flatMap((s, i) => {
          const before = path.steps[i - 1]?.state as BackendSnapshot | undefined;
          const id = (s.event as { requestId?: string }).requestId;
          return s.event.type === 'infer.cancel' && before?.context.queue.foreground.some((e) => e.event.requestId === id) ? [id] : [];
        });
        const served = fake.chatRequests.map((r) => String(r.body?.messages.at(-1)?.content));
        expect(served.filter((id) => cancelledWaiting.includes(id))).toEqual([]);
        expect(fake.maxConcurrent).toBeLessThanOrEqual(concurrency);
        fake.resetStats();
        fake.maxConcurrent = 0;
      }
    }, 90_000);
  });
}

// ---------------------------------------------------------------- health

const healthPaths = shortestHealthPaths();

describe(`health machine: ${healthPaths.length} shortest paths`, () => {
  it('reaches every health state', () => {
    const states = new Set(healthPaths.flatMap((p) => p.steps.map((s) => healthValue(s.state as HealthSnapshot))));
    expect([...states].sort()).toEqual(
      ['"unknown"', '{"down":"probing"}', '{"down":"waiting"}', '{"up":"pinging"}', '{"up":"probing"}', '{"up":"waiting"}'].sort(),
    );
  });

  /** How long the next probe takes on the machines' clock (the fake moves the clock while it answers). */
  let probeLatencyMs = 0;

  /** Sets up the fake so that the step's event is what happens next. */
  function arrange(event: { type: string } | undefined): void {
    if (!event) return;
    if (event.type === 'xstate.done.actor.probe') {
      fake.modelsFault = null;
      probeLatencyMs = (event as unknown as { output: { healthMs: number } }).output.healthMs > 100 ? 150 : 0;
    } else if (event.type === 'xstate.error.actor.probe') {
      fake.modelsFault = 'http_500';
    } else if (event.type === 'ping.measured') {
      fake.setDefault({ content: ['.'] });
    } else if (event.type === 'ping.failed') {
      fake.setDefault({ fault: 'http_400' });
    }
  }

  // Shortest paths reach `pinging` once; its two ways out are walked by extending that path.
  const walks = healthPaths
    .filter((p) => p.steps.length > 1)
    .map((p) => ({ events: p.steps.map((s) => s.event as { type: string }), expected: p.steps.map((s) => healthValue(s.state as HealthSnapshot)) }));
  const pinging = walks.find((w) => w.expected.at(-1) === '{"up":"pinging"}');
  for (const event of [{ type: 'ping.measured' }, { type: 'ping.failed' }]) {
    if (pinging) walks.push({ events: [...pinging.events, event], expected: [...pinging.expected, '{"up":"waiting"}'] });
  }

  for (const { events, expected } of walks) {
    it(`${events.at(-1)?.type}: ${expected.join(' → ')}`, async () => {
      const visited: string[] = [];
      fake.resetStats();
      probeLatencyMs = 0;
      const clock = new SimulatedClock();
      clock.set(Date.parse('2026-11-29T12:00:00Z'));
      fake.onModels = () => clock.increment(probeLatencyMs);
      // Each `waiting` ends when the test moves the clock one interval, never on a real timer.
      let waits = 0;
      arrange(events[1]);
      const actor = realBackend(
        1,
        25,
        (snapshot) => {
          const value = healthValue(snapshot);
          if (visited.at(-1) === value) return;
          visited.push(value);
          if (value.includes('waiting')) waits += 1;
          arrange(events[visited.length]); // the step after the one just reached
        },
        undefined,
        clock,
      ).start();
      let moved = 0;
      await until(
        () => {
          if (moved < waits && visited.length < expected.length) {
            moved += 1;
            clock.increment(25);
          }
          return visited.length >= expected.length;
        },
        5_000,
        expected.join(' → '),
      );
      // The ping is a real request through the mailbox: the fake sees it.
      if (expected.includes('{"up":"pinging"}')) await until(() => fake.chatRequests.length > 0, 2_000, 'the ping at the fake');
      actor.stop();
      expect(visited.slice(0, expected.length)).toEqual(expected);
      fake.modelsFault = null;
      fake.onModels = null;
      fake.setDefault({ content: ['ok'] });
      fake.resetStats();
    });
  }
});
