/**
 * The health sub-machine against the real fake server, on a simulated clock: each probe happens when
 * the test moves the clock past the health interval, so nothing depends on how fast this machine is.
 * The I/O is real (the probe, the ping, the user's stream); the test waits for its outcome, never for
 * time to pass.
 */
import { SimulatedClock } from 'xstate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendEmitted } from '../src/machines/backend-machine.js';
import { readBackendStatus, type BackendActor } from '../src/runtime/backend-registry.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startBackendActor, until } from './helpers/backend-actor.js';
import { request } from './helpers/requester.js';

let fake: FakeBackend;
const actors: BackendActor[] = [];
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});
afterEach(async () => {
  for (const actor of actors.splice(0)) actor.stop();
  await fake.setDown(false);
  fake.status = null;
  fake.modelsDelayMs = 0;
  fake.onModels = null;
  fake.modelsFault = null;
  fake.setDefault({ content: ['Hello'] });
  fake.resetStats();
});

/** A backend actor on its own simulated clock (started at a realistic epoch), stopped after the test. */
function start(options: Parameters<typeof startBackendActor>[1] & { healthIntervalMs: number }) {
  const clock = new SimulatedClock();
  clock.set(Date.parse('2026-11-29T12:00:00Z'));
  const { actor } = startBackendActor(fake, { ...options, clock });
  actors.push(actor);
  // A probe takes `probeLatencyMs` on the machines' clock: the fake moves it while it answers.
  let probeLatencyMs = 0;
  fake.onModels = () => {
    if (probeLatencyMs > 0) clock.increment(probeLatencyMs);
  };
  const probesTake = (ms: number): void => {
    probeLatencyMs = ms;
  };
  const health = () => readBackendStatus(actor, clock.now());
  const samples = () => actor.getSnapshot().context.health.getSnapshot().context.measures.samples;
  // Probes that have finished, successful or not: each time the health machine leaves `probing`.
  let finished = 0;
  let wasProbing = false;
  actor.getSnapshot().context.health.subscribe((snapshot) => {
    const probing = JSON.stringify(snapshot.value).includes('probing');
    if (wasProbing && !probing) finished += 1;
    wasProbing = probing;
  });
  const value = () => JSON.stringify(actor.getSnapshot().context.health.getSnapshot().value);
  /** Waits until the machine waits for its next probe, moves the clock one interval, waits for that probe. */
  const probe = async (afterMs = options.healthIntervalMs): Promise<void> => {
    await until(() => value().includes('waiting'), 5_000, 'waiting for the next probe');
    const before = finished;
    clock.increment(afterMs);
    await until(() => finished > before, 5_000, 'a probe');
  };
  const probes = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += 1) await probe();
  };
  return { actor, clock, health, samples, value, probe, probes, probesTake };
}

/** A reply the fake holds until the test opens it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('backend health', () => {
  it('goes unknown → up → down → up as the server leaves and returns, emitting each change once', async () => {
    const { actor, health, probe } = start({ healthIntervalMs: 50 });
    const emitted: BackendEmitted[] = [];
    actor.on('backend.up', (e) => emitted.push(e));
    actor.on('backend.down', (e) => emitted.push(e));
    await until(() => health().state === 'up', 5_000, 'up after the first probe');
    await fake.setDown(true);
    await probe();
    expect(health()).toMatchObject({ state: 'down', reason: 'backend_unavailable' });
    await probe(); // still down: no second emission
    await fake.setDown(false);
    await probe();
    expect(health().state).toBe('up');
    await probe();
    expect(emitted.map((e) => e.type)).toEqual(['backend.up', 'backend.down', 'backend.up']);
    expect(emitted[1]).toMatchObject({ name: 'fake', reason: 'backend_unavailable' });
  });

  it('takes the load from the status API: idle, normal, busy, very busy', async () => {
    const { health, probes, samples } = start({ healthIntervalMs: 30, statusApi: true });
    await until(() => samples() >= 1, 5_000, 'the first probe');
    const seen: string[] = [];
    for (const [activeJobs, expected] of [[0, 'idle'], [1, 'normal'], [3, 'busy'], [5, 'very_busy']] as const) {
      fake.status = { active_jobs: activeJobs, total_requests: 10 };
      await probes(1);
      expect(health()).toMatchObject({ state: 'up', source: 'status_api' });
      seen.push(health().load);
      expect(health().load).toBe(expected);
    }
    expect(seen).toEqual(['idle', 'normal', 'busy', 'very_busy']);
  });

  it('takes the load from the hybrid rule: health latency against the baseline', async () => {
    const { health, probes, probesTake, samples } = start({ healthIntervalMs: 30 });
    await until(() => samples() >= 1, 5_000, 'the first probe');
    // Probes take no time on the machines' clock: the baseline is the 10 ms floor from the first samples.
    await probes(5);
    expect(health()).toMatchObject({ state: 'up', source: 'hybrid', load: 'idle' });
    probesTake(40); // over 2x the 10 ms baseline
    await probes(1);
    expect(health().load).toBe('normal');
    probesTake(200); // over 5x
    await probes(1);
    expect(health().load).toBe('busy');
  });

  it('pings the model (as background work through the mailbox) when health is slow, and a slow ping means very busy', async () => {
    const { clock, health, probe, probes, probesTake, samples, value } = start({ healthIntervalMs: 30, client: { firstByteTimeoutMs: 20_000, timeoutMs: 20_000 } });
    await until(() => samples() >= 1, 5_000, 'the first probe');
    await probes(5); // the baseline is the 10 ms floor (see the hybrid test)
    fake.resetStats();
    const held = gate();
    fake.setDefault(() => held.opened.then(() => ({ content: ['.'] })));
    probesTake(60); // > 3x the 10 ms baseline: the rule wants an inference ping
    await probes(1);
    await until(() => fake.chatRequests.length === 1, 5_000, 'inference ping');
    expect(fake.chatRequests[0]?.body).toMatchObject({ max_tokens: 1, stream: false });
    expect(health().queue).toEqual({ waiting: 0, running: 1 });
    // The ping takes 8.2 s on the machines' clock: more than 8 s means very busy.
    clock.increment(8_200);
    held.open();
    await until(() => health().load === 'very_busy', 5_000, 'very busy');
    await probes(2);
    expect(fake.chatRequests).toHaveLength(1); // cached and in cooldown: no second ping
  });

  it('does not ping while a user request holds the slot, and a progressing stream is proof of life', async () => {
    const { actor, health, probes, probesTake, samples } = start({ healthIntervalMs: 100 });
    await until(() => samples() >= 1, 5_000, 'the first probe');
    await probes(5);
    // A stream that keeps making progress until the test cancels it.
    fake.setDefault({ fault: 'slow_drip', chunkDelayMs: 20 });
    const user = request(actor, 'long answer', { kind: 'stream' });
    await until(() => user.text().length > 0, 5_000, 'streaming');
    fake.modelsFault = 'http_500';
    probesTake(60);
    await probes(3); // failing probes while the stream is in progress: still up, and no ping
    expect(health().state).toBe('up');
    user.cancel();
    await user.terminal;
    expect(fake.chatRequests).toHaveLength(1); // only the user's request
    await probes(1);
    expect(health().state).toBe('down');
  });

  it('a successful answer is proof of life: a backend whose probes fail is up again at once', async () => {
    const { actor, health, probe, samples } = start({ healthIntervalMs: 100 });
    await until(() => samples() >= 1, 5_000, 'the first probe');
    fake.modelsFault = 'http_500';
    await probe();
    expect(health().state).toBe('down');
    fake.setDefault({ content: ['fine'] });
    const user = request(actor, 'hello');
    expect((await user.terminal).type).toBe('infer.done');
    await until(() => health().state === 'up', 5_000, 'up on the answer');
  });

  it('is down with model_missing when the server does not list the configured model, and refuses requests at once', async () => {
    fake.models = ['another-model'];
    try {
      const { actor, health } = start({ healthIntervalMs: 100 });
      await until(() => health().state === 'down', 5_000, 'down');
      expect(health().reason).toBe('model_missing');
      const user = request(actor, 'hello');
      const reply = await user.terminal;
      expect(reply).toMatchObject({ type: 'infer.error', error: { reason: 'model_missing' } });
      expect(fake.chatRequests).toHaveLength(0);
    } finally {
      fake.models = ['fake-model'];
    }
  });

  it('nudges the load up while requests wait in its own queue', async () => {
    const { actor, health, probes, samples } = start({ healthIntervalMs: 30, statusApi: true });
    fake.status = { active_jobs: 0, total_requests: 0 };
    await until(() => samples() >= 1, 5_000, 'the first probe');
    await probes(1);
    const held = gate();
    fake.setDefault(() => held.opened.then(() => ({ content: ['x'] })));
    const a = request(actor, 'a');
    const b = request(actor, 'b');
    await a.started;
    expect(health()).toMatchObject({ load: 'normal', queue: { waiting: 1, running: 1 } });
    held.open();
    await Promise.all([a.terminal, b.terminal]);
  });
});
