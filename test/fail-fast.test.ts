/**
 * Fail fast (issue 9, "Must show"): a classifier that cannot be reached is asked once, not again as a
 * stream; a reasoner known to be down is not called (fallback at once, or its reason at once); a busy
 * reasoner gets a notice first; the stream heartbeat goes out only when no chunk came for its interval;
 * a successful answer is proof of life. Whole gateways over real fake model servers and real `ws`
 * clients; times are measured, never slept.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend, type FakeReply, type RecordedRequest } from './fakes/fake-openai-backend.js';
import { classifiedText } from './helpers/scripted-models.js';
import { JobClient, startTunedGateway, waitUntil, type EventFrame, type TunedGateway } from './helpers/tuned-gateway.js';

const messages = (
  JSON.parse(readFileSync(new URL('../prompts/messages.json', import.meta.url), 'utf8')) as {
    en: { processing: Record<string, string>; errors: Record<string, string> };
  }
).en;

/**
 * Model requests a user's message caused: not the health machine's one-token pings, which may come at
 * any time a probe is slow and say nothing about what a job did.
 */
function userRequests(fake: FakeBackend): RecordedRequest[] {
  return fake.chatRequests.filter((request) => !(request.body?.max_tokens === 1 && request.body.messages.at(-1)?.content === 'ping'));
}

/** Classifier requests (non-streamed, `[now] … [message]`) among them. */
function classifierRequests(fake: FakeBackend): RecordedRequest[] {
  return userRequests(fake).filter((request) => request.body !== null && classifiedText(request.body) !== null);
}

const names = (events: EventFrame[]): string[] => events.map((e) => e.event);
const route = JSON.stringify({ action: 'route' });

/**
 * The small model, by message: a classification of `hang …` never answers (no headers), `route …` is
 * routed to the reasoner, anything else is answered directly; its streams answer `small answer`.
 */
function scriptSmall(small: FakeBackend): void {
  small.setDefault((body): FakeReply => {
    const text = classifiedText(body);
    if (text === null) return { content: ['small ', 'answer'] };
    if (text.startsWith('hang')) return { fault: 'hang_before_headers' };
    if (text.startsWith('route')) return { content: route };
    return { content: JSON.stringify({ action: 'direct', response: `direct ${text}` }) };
  });
}

async function backendState(gateway: TunedGateway, name: 'small' | 'large', state: 'up' | 'down', timeoutMs = 5_000): Promise<void> {
  await waitUntil(async () => (await gateway.status()).backends[name]?.state === state, timeoutMs, `${name} ${state} on /status`);
}

describe('a classifier that cannot be reached is asked once (fallback on)', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;
  let client: JobClient;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend({ defaultReply: { content: ['large ', 'answer'] } });
    scriptSmall(small);
    gateway = await startTunedGateway({
      small,
      large,
      // The classifier's first byte is due within 2 s. The reasoner is probed every 200 ms so that its
      // going down is known quickly (a probe is one GET /models).
      backends: { small: { timeoutMs: 2_000 }, large: { healthIntervalMs: 200 } },
    });
    client = await JobClient.connect(gateway.wsUrl);
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  it('hangs before headers with timeoutMs 2000: the reasoner answers within 3.5 s and the classifier got one request', async () => {
    await large.setDown(false);
    await backendState(gateway, 'large', 'up');
    small.resetStats();
    large.resetStats();

    const started = performance.now();
    const { jobId } = await client.chat('hang on, what is a monad?');
    const events = await client.finished(jobId, 10_000);
    const elapsed = performance.now() - started;

    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('large answer');
    expect(elapsed).toBeLessThan(3_500);
    // Asked once, not again as a stream; and that one request was given up (the first-byte timeout).
    const asked = userRequests(small);
    expect(asked).toHaveLength(1);
    expect(asked[0]?.body?.stream ?? false).toBe(false);
    await waitUntil(() => asked[0]?.clientAborted, 1_000, 'the hanging classifier request given up');
    expect(userRequests(large)).toHaveLength(1);
  });

  it('with the reasoner known down too, ends with the classifier\'s reason (backend_timeout) within 3.5 s', async () => {
    await large.setDown(true);
    await backendState(gateway, 'large', 'down');
    small.resetStats();
    large.resetStats();

    const started = performance.now();
    const { jobId } = await client.chat('hang again, what is a functor?');
    const events = await client.finished(jobId, 10_000);
    const elapsed = performance.now() - started;

    const last = events.at(-1);
    expect(last?.event).toBe('error');
    expect(last?.data.reason).toBe('backend_timeout');
    expect(elapsed).toBeLessThan(3_500);
    expect(userRequests(small)).toHaveLength(1);
    // Nothing was streamed from anyone: the answer is empty and no fallback was tried.
    expect(names(events)).not.toContain('result');
  });

});

/**
 * Starts a gateway whose reasoner is known to be down but can be reached again: it refused connections
 * when the gateway probed it, and listens again now. Probes come once a minute, so health keeps saying
 * `down`; a job that called it anyway would get an answer, which the tests would see.
 */
async function reasonerKnownDown(fallback: boolean) {
  const small = await startFakeBackend();
  const large = await startFakeBackend({ defaultReply: { content: ['large ', 'answer'] } });
  await large.setDown(true);
  scriptSmall(small);
  const gateway = await startTunedGateway({ small, large, config: { fallback: { reasonerToClassifier: fallback } } });
  await backendState(gateway, 'large', 'down');
  expect((await gateway.status()).backends.large?.reason).toBe('backend_unavailable');
  await large.setDown(false);
  const client = await JobClient.connect(gateway.wsUrl);
  return { small, large, gateway, client };
}

/**
 * The time from the classifier's answer (the fake's end of response) to a job event: `at` is when the
 * job published it (its decision), `receivedAt` when the client got it (after the write-ahead journal).
 * Measured on a warm gateway: the first routed job of a process also pays V8's first compile of the
 * path (zod schemas, the machine's actions), 60–100 ms here, once.
 */
function sinceClassified(classified: RecordedRequest | undefined, event: EventFrame | undefined): { decided: number; delivered: number } {
  const answeredAt = classified?.endedAt ?? Number.NaN;
  return { decided: Date.parse(event?.at ?? '') - answeredAt, delivered: (event?.receivedAt ?? Number.NaN) - answeredAt };
}

describe('a reasoner known down, fallback on', () => {
  let setup: Awaited<ReturnType<typeof reasonerKnownDown>>;

  beforeAll(async () => {
    setup = await reasonerKnownDown(true);
  }, 30_000);

  afterAll(async () => {
    setup?.client.close();
    await setup?.gateway.close();
    await setup?.small.close();
    await setup?.large.close();
  });

  it('falls back to the classifier within 100 ms of the classification and never calls the reasoner', async () => {
    const { small, large, client } = setup;
    small.resetStats();
    large.resetStats();
    const warm = await client.chat('route this first: a warm-up');
    expect((await client.finished(warm.jobId, 10_000)).at(-1)?.event).toBe('done');
    small.resetStats();

    const { jobId } = await client.chat('route this, please: why is the sky blue?');
    const events = await client.finished(jobId, 10_000);

    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('small answer');
    // The first sign of the fallback: its notice (or, were there none, its first chunk).
    const switching = events.find((e) => e.event === 'processing' && e.data.message === messages.processing.switchingModel) ?? events.find((e) => e.event === 'result');
    const { decided, delivered } = sinceClassified(classifierRequests(small)[0], switching);
    expect(decided).toBeLessThan(100);
    // Delivery waits for the journal too; still nowhere near a connect timeout.
    expect(delivered).toBeLessThan(1_000);
    // The fallback is a stream from the classifier; the reasoner, reachable all along, was never asked.
    expect(userRequests(small).filter((r) => r.body?.stream === true)).toHaveLength(1);
    expect(userRequests(large)).toHaveLength(0);
    expect(names(events)).toContain('rewrite');
  });
});

describe('a reasoner known down, fallback off', () => {
  let setup: Awaited<ReturnType<typeof reasonerKnownDown>>;

  beforeAll(async () => {
    setup = await reasonerKnownDown(false);
  }, 30_000);

  afterAll(async () => {
    setup?.client.close();
    await setup?.gateway.close();
    await setup?.small.close();
    await setup?.large.close();
  });

  it('ends a routed job with backend_unavailable within 100 ms of the classification, calling nobody', async () => {
    const { small, large, client } = setup;
    small.resetStats();
    large.resetStats();
    const warm = await client.chat('route this first: a warm-up');
    expect((await client.finished(warm.jobId, 10_000)).at(-1)?.data.reason).toBe('backend_unavailable');
    small.resetStats();

    const { jobId } = await client.chat('route that: explain entropy');
    const events = await client.finished(jobId, 10_000);

    const last = events.at(-1);
    expect(last?.event).toBe('error');
    expect(last?.data.reason).toBe('backend_unavailable');
    expect(last?.data.message).toBe(messages.errors.backendUnavailable);
    const { decided, delivered } = sinceClassified(classifierRequests(small)[0], last);
    expect(decided).toBeLessThan(100);
    expect(delivered).toBeLessThan(1_000);
    expect(userRequests(large)).toHaveLength(0);
    // Only the classification: no stream from the classifier either (fallback is off).
    expect(userRequests(small)).toHaveLength(1);
    expect(names(events)).not.toContain('result');
  });
});

describe('a busy reasoner and the stream heartbeat', () => {
  const HEARTBEAT_MS = 300;
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;
  let client: JobClient;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend({ defaultReply: { content: ['large ', 'answer'] } });
    // The reasoner's status API says two jobs are running: load `busy`, from the first probe on.
    large.status = { active_jobs: 2, total_requests: 10 };
    scriptSmall(small);
    gateway = await startTunedGateway({
      small,
      large,
      backends: { large: { statusUrl: large.statusUrl } },
      deps: { delays: { streamHeartbeat: HEARTBEAT_MS } },
    });
    client = await JobClient.connect(gateway.wsUrl);
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  it('tells a routed message that the reasoner is busy before its answer', async () => {
    await waitUntil(async () => (await gateway.status()).backends.large?.load === 'busy', 5_000, 'large busy on /status');
    const { jobId } = await client.chat('route me to the big model');
    const events = await client.finished(jobId, 10_000);
    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('large answer');
    const busy = events.findIndex((e) => e.event === 'processing' && e.data.message === messages.processing.reasonerBusy);
    const firstResult = events.findIndex((e) => e.event === 'result');
    expect(busy).toBeGreaterThan(0);
    expect(busy).toBeLessThan(firstResult);
  });

  it('sends no heartbeat while chunks keep coming (every 50 ms for 1 s, heartbeat 300 ms)', async () => {
    const pieces = Array.from({ length: 20 }, (_, i) => `p${i} `);
    large.enqueue({ content: pieces, chunkDelayMs: 50 });
    const { jobId } = await client.chat('a flowing answer', { mode: 'deep' });
    const events = await client.finished(jobId, 10_000);

    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe(pieces.join(''));
    const first = events.findIndex((e) => e.event === 'result');
    const last = events.findLastIndex((e) => e.event === 'result');
    // The stream really lasted about a second, many times the heartbeat's interval…
    expect(Date.parse(events[last]!.at) - Date.parse(events[first]!.at)).toBeGreaterThan(2 * HEARTBEAT_MS);
    expect(last - first).toBeGreaterThan(2);
    // …and nothing but its chunks went out meanwhile.
    expect(names(events.slice(first, last + 1)).filter((name) => name !== 'result')).toEqual([]);
  });

  it('sends a heartbeat when the stream pauses longer than its interval', async () => {
    large.enqueue({ content: ['slow ', 'steady ', 'answer'], chunkDelayMs: 2 * HEARTBEAT_MS });
    const { jobId } = await client.chat('a pausing answer', { mode: 'deep' });
    const events = await client.finished(jobId, 10_000);

    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('slow steady answer');
    const first = events.findIndex((e) => e.event === 'result');
    const last = events.findLastIndex((e) => e.event === 'result');
    const between = events.slice(first, last).filter((e) => e.event === 'processing');
    expect(between.length).toBeGreaterThanOrEqual(1);
    expect(between.every((e) => e.data.message === messages.processing.generating)).toBe(true);
  });
});

describe('proof of life', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;
  let client: JobClient;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    // Its probe fails (GET /models answers 500), its chat completions work.
    small.modelsFault = 'http_500';
    scriptSmall(small);
    gateway = await startTunedGateway({ small, large });
    client = await JobClient.connect(gateway.wsUrl);
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  it('a backend reported down answers a request: /status says up at once, without another probe', async () => {
    await backendState(gateway, 'small', 'down');
    const probes = (): number => small.requests.filter((r) => r.path === '/v1/models').length;
    const probesBefore = probes();

    // The classifier is still called while reported down (only a missing model is refused at once).
    const { jobId } = await client.chat('just say something');
    const events = await client.finished(jobId, 10_000);
    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('direct just say something');

    // Probes come once a minute: `up` within a second can only be the answer's doing.
    await backendState(gateway, 'small', 'up', 1_000);
    expect(probes()).toBe(probesBefore);
    expect((await gateway.status()).backends.small?.reason).toBeUndefined();
  });
});

