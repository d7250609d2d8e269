/**
 * A configured model the server does not list (issue 9, "Must show"): the probe finds it missing, so the
 * backend is `down` with `reason: "model_missing"` on `/status`, the log names the model, and a chat
 * that needs it ends at once with `error` `model_missing` (its message says the model is missing)
 * without a request to the server. The gateway runs in its own process (`npm start`'s entry point), so
 * the log is the real one.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './helpers/gateway-database.js';
import { classifiedText } from './helpers/scripted-models.js';
import { JobClient, startTunedGateway, waitUntil, type TunedGateway } from './helpers/tuned-gateway.js';
import type { StatusBody } from '../src/runtime/runtime.js';

const MISSING = 'qwen-missing-7b-instruct';
const messages = (JSON.parse(readFileSync(new URL('../prompts/messages.json', import.meta.url), 'utf8')) as { en: { errors: Record<string, string> } }).en;

/** The small model routes `route …` messages and answers the rest directly; its streams say `small answer`. */
function scriptSmall(small: FakeBackend): void {
  small.setDefault((body): FakeReply => {
    const text = classifiedText(body);
    if (text === null) return { content: ['small ', 'answer'] };
    return { content: JSON.stringify(text.startsWith('route') ? { action: 'route' } : { action: 'direct', response: `direct ${text}` }) };
  });
}

async function statusOf(url: string): Promise<StatusBody> {
  const response = await fetch(`${url}/status`);
  return (await response.json()) as StatusBody;
}

describe('a reasoner configured with a model its server does not list (child gateway)', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let dir: string;
  let database: GatewayDatabase;
  let child: ChildGateway;
  let client: JobClient;

  beforeAll(async () => {
    small = await startFakeBackend();
    // Up and answering, but it lists only `fake-model`.
    large = await startFakeBackend({ defaultReply: { content: ['large ', 'answer'] } });
    scriptSmall(small);
    dir = mkdtempSync(join(tmpdir(), 'sb-model-missing-'));
    database = await prepareGatewayDatabase(process.env['TEST_DATABASE_URL'] ? 'postgres' : 'pglite', { name: 'model-missing' });
    const config = childConfig(dir, small, large, {
      database: database.databaseConfig,
      modes: { daily: 'small', deep: 'large' },
      // Nothing stands in for the reasoner: a routed message needs it.
      fallback: { reasonerToClassifier: false },
    });
    const backends = config.backends as Record<string, Record<string, unknown>>;
    backends.large = { ...backends.large, model: MISSING };
    child = await startChildGateway(dir, config);
    client = await JobClient.connect(child.wsUrl);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await child?.kill();
    await database?.dispose();
    await small?.close();
    await large?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('shows the backend down with model_missing on /status, the classifier up', async () => {
    const status = await waitUntil(async () => {
      const body = await statusOf(child.url);
      return body.backends.large?.state === 'down' && body.backends.small?.state === 'up' ? body : undefined;
    }, 10_000, 'large down and small up on /status');
    expect(status.backends.large?.reason).toBe('model_missing');
    expect(status.backends.small?.reason).toBeUndefined();
  });

  it('names the model in the log', async () => {
    const line = await waitUntil(
      () =>
        child.logs
          .map((text) => {
            try {
              return JSON.parse(text) as Record<string, unknown>;
            } catch {
              return undefined;
            }
          })
          .find((entry) => entry?.reason === 'model_missing'),
      10_000,
      'a log line with reason model_missing',
    );
    expect(line.backend).toBe('large');
    expect(line.model).toBe(MISSING);
    expect(String(line.msg)).toContain(MISSING);
    // Once per change, not once per probe or per request.
    expect(child.logs.filter((text) => text.includes('"reason":"model_missing"'))).toHaveLength(1);
  });

  it('ends a chat in its mode, and a routed chat, with model_missing at once, sending the server nothing', async () => {
    await waitUntil(async () => (await statusOf(child.url)).backends.large?.reason === 'model_missing', 10_000, 'model_missing known');
    large.resetStats();

    for (const [text, extra] of [
      ['tell me about tides', { mode: 'deep' }],
      ['route this: tell me about tides', {}],
    ] as const) {
      const started = performance.now();
      const { jobId } = await client.chat(text, extra);
      const events = await client.finished(jobId, 10_000);
      const elapsed = performance.now() - started;
      const last = events.at(-1);
      expect(last?.event).toBe('error');
      expect(last?.data.reason).toBe('model_missing');
      expect(last?.data.message).toBe(messages.errors.modelMissing);
      // No connect, no timeout: the classifier's answer (for the routed one) and the journal are all it waits for.
      expect(elapsed).toBeLessThan(1_000);
    }
    expect(large.chatRequests).toHaveLength(0);
    // Besides the start line's list of backends, the log still has the one line about the model, and no line per failed chat quoting the server.
    expect(child.logs.filter((text) => text.includes(MISSING) && !text.includes('"msg":"switchboard listening"'))).toHaveLength(1);
  });
});

describe('a classifier configured with a model its server does not list (in process)', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;
  let client: JobClient;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend({ defaultReply: { content: ['large ', 'answer'] } });
    scriptSmall(small);
    gateway = await startTunedGateway({ small, large, backends: { small: { model: MISSING } } });
    client = await JobClient.connect(gateway.wsUrl);
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await gateway?.close();
    await small?.close();
    await large?.close();
  });

  it('is not asked: the reasoner answers at once', async () => {
    await waitUntil(async () => (await gateway.status()).backends.small?.reason === 'model_missing', 10_000, 'small model_missing on /status');
    small.resetStats();
    const started = performance.now();
    const { jobId } = await client.chat('what is a tide?');
    const events = await client.finished(jobId, 10_000);
    expect(events.at(-1)?.event).toBe('done');
    expect(client.answer(jobId)).toBe('large answer');
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(small.chatRequests).toHaveLength(0);
  });
});
