import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendEmitted } from '../src/machines/backend-machine.js';
import { readBackendStatus, type BackendActor } from '../src/runtime/backend-registry.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startBackendActor, until } from './helpers/backend-actor.js';
import { request } from './helpers/requester.js';

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => {
  await fake.close();
});
afterEach(async () => {
  await fake.setDown(false);
  fake.status = null;
  fake.modelsDelayMs = 0;
  fake.modelsFault = null;
  fake.setDefault({ content: ['Hello'] });
  fake.resetStats();
});

const healthOf = (actor: BackendActor) => readBackendStatus(actor);
const samples = (actor: BackendActor) => actor.getSnapshot().context.health.getSnapshot().context.measures.samples;

/** Waits until `n` more successful probes have been folded into the baseline. */
async function probes(actor: BackendActor, n: number): Promise<void> {
  const target = samples(actor) + n;
  await until(() => samples(actor) >= target, 10_000, `${n} probes`);
}

describe('backend health', () => {
  it('goes unknown → up → down → up as the server leaves and returns, emitting each change once', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 50 });
    const emitted: BackendEmitted[] = [];
    actor.on('backend.up', (e) => emitted.push(e));
    actor.on('backend.down', (e) => emitted.push(e));
    expect(healthOf(actor).state).toBe('unknown');
    await until(() => healthOf(actor).state === 'up', 2_000, 'up');
    await fake.setDown(true);
    await until(() => healthOf(actor).state === 'down', 2_000, 'down');
    await new Promise((r) => setTimeout(r, 200));
    await fake.setDown(false);
    await until(() => healthOf(actor).state === 'up', 2_000, 'up again');
    await new Promise((r) => setTimeout(r, 150));
    expect(emitted.map((e) => e.type)).toEqual(['backend.up', 'backend.down', 'backend.up']);
    expect(emitted[1]).toMatchObject({ name: 'fake', reason: 'backend_unavailable' });
    actor.stop();
  });

  it('takes the load from the status API: idle, normal, busy, very busy', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 30, statusApi: true });
    const seen: string[] = [];
    for (const [activeJobs, expected] of [[0, 'idle'], [1, 'normal'], [3, 'busy'], [5, 'very_busy']] as const) {
      fake.status = { active_jobs: activeJobs, total_requests: 10 };
      await probes(actor, 2);
      const status = healthOf(actor);
      expect(status).toMatchObject({ state: 'up', source: 'status_api' });
      seen.push(status.load);
      expect(status.load).toBe(expected);
    }
    expect(seen).toEqual(['idle', 'normal', 'busy', 'very_busy']);
    actor.stop();
  });

  it('takes the load from the hybrid rule: health latency against the baseline', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 30 });
    await probes(actor, 6); // the baseline settles on the 10 ms floor
    expect(healthOf(actor)).toMatchObject({ state: 'up', source: 'hybrid', load: 'idle' });
    fake.modelsDelayMs = 40;
    await probes(actor, 1);
    expect(healthOf(actor).load).toBe('normal');
    fake.modelsDelayMs = 200;
    await probes(actor, 1);
    expect(healthOf(actor).load).toBe('busy');
    actor.stop();
  });

  it('pings the model (as background work through the mailbox) when health is slow, and a slow ping means very busy', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 30, client: { firstByteTimeoutMs: 20_000, timeoutMs: 20_000 } });
    await probes(actor, 6);
    fake.setDefault({ content: ['.'], headersDelayMs: 8_200 });
    fake.modelsDelayMs = 60; // > 3x the 10 ms baseline: the rule wants an inference ping
    await until(() => fake.chatRequests.length === 1, 3_000, 'inference ping');
    expect(fake.chatRequests[0]?.body).toMatchObject({ max_tokens: 1, stream: false });
    expect(healthOf(actor).queue).toEqual({ waiting: 0, running: 1 });
    await until(() => healthOf(actor).load === 'very_busy', 12_000, 'very busy');
    expect(fake.chatRequests).toHaveLength(1); // cached and in cooldown: no second ping
    actor.stop();
  }, 20_000);

  it('does not ping while a user request holds the slot, and a progressing stream is proof of life', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 100 });
    await probes(actor, 6);
    fake.setDefault({ content: Array.from({ length: 60 }, () => 'x'), chunkDelayMs: 20 });
    const user = request(actor, 'long answer');
    await until(() => user.text().length > 0, 2_000, 'streaming');
    fake.modelsFault = 'http_500';
    fake.modelsDelayMs = 60;
    await new Promise((r) => setTimeout(r, 400));
    expect(healthOf(actor).state).toBe('up');
    await user.terminal;
    expect(fake.chatRequests).toHaveLength(1); // only the user's request
    await until(() => healthOf(actor).state === 'down', 3_000, 'down once the stream is over');
    actor.stop();
  });

  it('nudges the load up while requests wait in its own queue', async () => {
    const { actor } = startBackendActor(fake, { healthIntervalMs: 30, statusApi: true });
    fake.status = { active_jobs: 0, total_requests: 0 };
    await probes(actor, 2);
    fake.setDefault({ content: ['x'], headersDelayMs: 200 });
    const a = request(actor, 'a');
    const b = request(actor, 'b');
    await a.started;
    expect(healthOf(actor)).toMatchObject({ load: 'normal', queue: { waiting: 1, running: 1 } });
    await Promise.all([a.terminal, b.terminal]);
    actor.stop();
  });
});
