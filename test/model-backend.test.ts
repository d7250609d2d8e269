import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import { createActor, type AnyActorRef, type SnapshotFrom } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIClient } from '../src/actors/inference/openai-client.js';
import type { BackendEvent } from '../src/machines/backend-machine.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { until } from './helpers/backend-actor.js';
import { request, type TestRequester } from './helpers/requester.js';
import { inertRequester, walkableBackendMachine } from './helpers/walkable-backend.js';

/**
 * Model-based tests of the backend machine's two regions: paths are generated from the machine with
 * @xstate/graph and each one is driven against a real backend actor talking to the fake server.
 */

type Snapshot = SnapshotFrom<typeof walkableBackendMachine>;

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});

function realBackend(concurrency: number, healthIntervalMs: number, inspect?: (snapshot: Snapshot) => void) {
  const client = createOpenAIClient({ baseUrl: fake.baseUrl, model: 'fake-model', firstByteTimeoutMs: 5_000 });
  return createActor(provideBackendMachine({ client, probeTimeoutMs: 1_000 }), {
    input: { name: 'model', concurrency, maxBackgroundWaitMs: 60_000, healthIntervalMs },
    inspect: (event) => {
      if (inspect && event.type === '@xstate.snapshot' && (event.actorRef as AnyActorRef).id === 'model-under-test') {
        inspect(event.snapshot as Snapshot);
      }
    },
    id: 'model-under-test',
  });
}

// ---------------------------------------------------------------- mailbox

const MAX_REQUESTS = 3;

/** What the mailbox is: its state, who runs, who waits — the serialization and the check are the same. */
const mailboxKey = (snapshot: Snapshot): string =>
  JSON.stringify([
    (snapshot.value as { mailbox: string }).mailbox,
    [...snapshot.context.running.keys()],
    snapshot.context.queue.foreground.map((entry) => entry.event.requestId),
  ]);

function mailboxEvents(snapshot: Snapshot): BackendEvent[] {
  const { context } = snapshot;
  const events: BackendEvent[] = [];
  const n = context.queue.nextSeq;
  if (n < MAX_REQUESTS) {
    events.push({ type: 'infer.request', requestId: `r${n}`, priority: 'foreground', kind: 'stream', request: { messages: [] }, replyTo: inertRequester });
  }
  for (const [requestId, running] of context.running) events.push({ type: 'slot.released', slot: running.slot, requestId, outcome: 'completed' });
  for (const entry of context.queue.foreground) events.push({ type: 'infer.cancel', requestId: entry.event.requestId });
  return events;
}

for (const concurrency of [1, 2]) {
  const paths = getSimplePaths(walkableBackendMachine, {
    input: { name: 'walk', concurrency, maxBackgroundWaitMs: 60_000, healthIntervalMs: 60_000 },
    events: mailboxEvents as never,
    serializeState: (snapshot) => `${mailboxKey(snapshot as Snapshot)}${(snapshot as Snapshot).context.queue.nextSeq}`,
  });

  describe(`mailbox with concurrency ${concurrency}: ${paths.length} simple paths`, () => {
    it('reaches every mailbox state', () => {
      const states = new Set(paths.flatMap((p) => p.steps.map((s) => (s.state.value as { mailbox: string }).mailbox)));
      expect([...states].sort()).toEqual(concurrency === 1 ? ['idle', 'saturated'] : ['idle', 'saturated', 'serving']);
    });

    it('drives each path against the real actor and the fake', async () => {
      for (const path of paths) {
        // Each request is held at the fake until the path releases it.
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
        const actor = realBackend(concurrency, 60_000).start();
        const requesters = new Map<string, TestRequester>();
        for (const step of path.steps) {
          const event = step.event as BackendEvent | { type: 'xstate.init' };
          if (event.type === 'infer.request') {
            requesters.set(event.requestId, request(actor, event.requestId, { requestId: event.requestId }));
          } else if (event.type === 'slot.released') {
            gate(event.requestId).open();
            await requesters.get(event.requestId)?.terminal;
          } else if (event.type === 'infer.cancel') {
            requesters.get(event.requestId)?.cancel();
            expect((await requesters.get(event.requestId)?.terminal)?.type).toBe('infer.cancelled');
          }
          const expected = mailboxKey(step.state as Snapshot);
          await until(() => mailboxKey(actor.getSnapshot()) === expected, 2_000, `${expected} after ${event.type}`);
        }
        allOpen = true;
        for (const g of gates.values()) g.open();
        await Promise.all([...requesters.values()].map((r) => r.terminal));
        actor.stop();
        await until(() => fake.concurrent === 0, 2_000, 'the fake to see every response end');
        // Only requests that were never cancelled while waiting reached the server.
        const cancelled = path.steps.flatMap((s) => (s.event.type === 'infer.cancel' ? [(s.event as { requestId: string }).requestId] : []));
        const served = fake.chatRequests.map((r) => String(r.body?.messages.at(-1)?.content));
        expect(served.filter((id) => cancelled.includes(id))).toEqual([]);
        expect(fake.maxConcurrent).toBeLessThanOrEqual(concurrency);
        fake.resetStats();
        fake.maxConcurrent = 0;
      }
    }, 60_000);
  });
}

// ---------------------------------------------------------------- health

type HealthStepEvent =
  | { type: 'xstate.done.actor.probe'; output: { healthMs: number; statusReport: null } }
  | { type: 'xstate.error.actor.probe'; error: { reason: string } }
  | { type: 'ping.measured'; latencyMs: number }
  | { type: 'ping.failed' };

const healthValue = (snapshot: Snapshot): string => JSON.stringify((snapshot.value as { health: unknown }).health);

function healthEvents(snapshot: Snapshot): Array<HealthStepEvent | { type: string }> {
  const health = healthValue(snapshot);
  const afterIn = (state: string) => ({ type: `xstate.after.healthInterval.backend.health.${state}.waiting` });
  const fast = { type: 'xstate.done.actor.probe' as const, output: { healthMs: 1, statusReport: null } };
  const slow = { type: 'xstate.done.actor.probe' as const, output: { healthMs: 500, statusReport: null } };
  const failed = { type: 'xstate.error.actor.probe' as const, error: { reason: 'backend_unavailable' } };
  if (health.includes('probing') || health === '"unknown"') {
    // A slow probe can only make the rule ask for a ping once the baseline has settled.
    return snapshot.context.measures.samples >= 5 ? [fast, slow, failed] : [fast, failed];
  }
  if (health === '{"up":"waiting"}') return [afterIn('up')];
  if (health === '{"down":"waiting"}') return [afterIn('down')];
  if (health === '{"up":"pinging"}') return [{ type: 'ping.measured', latencyMs: 50 }, { type: 'ping.failed' }];
  return [];
}

const healthPaths = getShortestPaths(walkableBackendMachine, {
  input: { name: 'walk', concurrency: 1, maxBackgroundWaitMs: 60_000, healthIntervalMs: 60_000 },
  events: healthEvents as never,
  serializeState: (snapshot) => `${healthValue(snapshot as Snapshot)}${Math.min((snapshot as Snapshot).context.measures.samples, 6)}`,
});

describe(`health region: ${healthPaths.length} shortest paths`, () => {
  it('reaches every health state', () => {
    const states = new Set(healthPaths.flatMap((p) => p.steps.map((s) => healthValue(s.state as Snapshot))));
    expect([...states].sort()).toEqual(
      ['"unknown"', '{"down":"probing"}', '{"down":"waiting"}', '{"up":"pinging"}', '{"up":"probing"}', '{"up":"waiting"}'].sort(),
    );
  });

  /** Sets up the fake so that the step's event is what happens next. */
  function arrange(event: { type: string } | undefined): void {
    if (!event) return;
    if (event.type === 'xstate.done.actor.probe') {
      fake.modelsFault = null;
      fake.modelsDelayMs = (event as unknown as { output: { healthMs: number } }).output.healthMs > 100 ? 150 : 0;
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
    .map((p) => ({ events: p.steps.map((s) => s.event as { type: string }), expected: p.steps.map((s) => healthValue(s.state as Snapshot)) }));
  const pinging = walks.find((w) => w.expected.at(-1) === '{"up":"pinging"}');
  for (const event of [{ type: 'ping.measured', latencyMs: 50 }, { type: 'ping.failed' }]) {
    if (pinging) walks.push({ events: [...pinging.events, event], expected: [...pinging.expected, '{"up":"waiting"}'] });
  }

  for (const { events, expected } of walks) {
    it(`${events.at(-1)?.type}: ${expected.join(' → ')}`, async () => {
      const visited: string[] = [];
      arrange(events[1]);
      const actor = realBackend(1, 25, (snapshot) => {
        const value = healthValue(snapshot);
        if (visited.at(-1) === value) return;
        visited.push(value);
        arrange(events[visited.length]); // the step after the one just reached
      }).start();
      await until(() => visited.length >= expected.length, 5_000, expected.join(' → '));
      actor.stop();
      expect(visited.slice(0, expected.length)).toEqual(expected);
      fake.modelsFault = null;
      fake.modelsDelayMs = 0;
      fake.setDefault({ content: ['ok'] });
      fake.resetStats();
    });
  }
});
