import { onTestFinished } from 'vitest';
import { createActor, type SimulatedClock } from 'xstate';
import { createOpenAIClient, type OpenAIClientOptions } from '../../src/actors/inference/openai-client.js';
import type { BackendMachineInput } from '../../src/machines/backend-machine.js';
import { provideBackendMachine } from '../../src/runtime/provide-backend-machine.js';
import type { FakeBackend } from '../fakes/fake-openai-backend.js';

export type TestBackendOptions = Partial<BackendMachineInput> & {
  client?: Partial<OpenAIClientOptions>;
  /** Use the fake's status API for load. */
  statusApi?: boolean;
  probeTimeoutMs?: number;
  /** Drives the machines' delays and the clock their rules read; real time when absent. */
  clock?: SimulatedClock;
};

/** A started backend actor over a real client pointed at the fake, as the runtime builds it; stopped when the test ends. */
export function startBackendActor(fake: FakeBackend, options: TestBackendOptions = {}) {
  const client = createOpenAIClient({
    baseUrl: fake.baseUrl,
    model: 'fake-model',
    statusUrl: options.statusApi ? fake.statusUrl : null,
    connectTimeoutMs: 1_000,
    firstByteTimeoutMs: 2_000,
    idleTimeoutMs: 1_000,
    timeoutMs: 5_000,
    streamDeadlineMs: 10_000,
    ...options.client,
  });
  const clock = options.clock;
  const now = clock === undefined ? undefined : () => clock.now();
  const machine = provideBackendMachine({ client, model: 'fake-model', probeTimeoutMs: options.probeTimeoutMs ?? 1_000, ...(now ? { now } : {}) });
  const errors: unknown[] = [];
  const actor = createActor(machine, {
    ...(clock ? { clock } : {}),
    input: {
      ...(now ? { now } : {}),
      name: options.name ?? 'fake',
      concurrency: options.concurrency ?? 1,
      maxBackgroundWaitMs: options.maxBackgroundWaitMs ?? 10_000,
      healthIntervalMs: options.healthIntervalMs ?? 60_000,
    },
  });
  actor.subscribe({ error: (error) => errors.push(error) });
  actor.start();
  onTestFinished(() => {
    actor.stop();
  });
  return { actor, errors };
}

/** Polls until `check` is true or the time runs out. */
export async function until(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
