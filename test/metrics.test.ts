/**
 * `GET /metrics` (DESIGN §5, issue 13): a whole gateway on port 0 over the fake model servers, scraped
 * with undici and read with a strict Prometheus text parser. Jobs run over the WebSocket, the OpenAI API
 * and the Synology webhook — direct, routed, failing, cancelled mid-stream — and the counters and
 * histogram counts move by exactly what ran, with bounded labels; the gauges are read at each scrape.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { startGateway, type Gateway } from '../src/transport/start-gateway.js';
import type { DeliveryClock } from '../src/transport/synology/delivery.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { TestClient, testConfig } from './helpers/gateway.js';
import { parsePrometheusText, sampleValue, valueOrZero, type MetricFamily } from './helpers/prometheus-text.js';
import { scriptModels } from './helpers/scripted-models.js';

const TOKEN = 'metrics-test-token';
const SYNOLOGY_TOKEN = 'synology-metrics-token';

type Families = Map<string, MetricFamily>;

/** Every metric of the gateway's own, with its type. */
const OWN_METRICS: Record<string, MetricFamily['type']> = {
  switchboard_jobs_total: 'counter',
  switchboard_job_duration_seconds: 'histogram',
  switchboard_job_first_chunk_seconds: 'histogram',
  switchboard_jobs_in_flight: 'gauge',
  switchboard_backend_queue_waiting: 'gauge',
  switchboard_backend_queue_running: 'gauge',
  switchboard_backend_state: 'gauge',
  switchboard_backend_load: 'gauge',
  switchboard_inference_duration_seconds: 'histogram',
  switchboard_health_probe_duration_seconds: 'histogram',
  switchboard_backend_slot_drain_seconds: 'histogram',
  switchboard_websocket_connections: 'gauge',
  switchboard_websocket_buffered_bytes: 'gauge',
  switchboard_journal_batch_lag_seconds: 'histogram',
  switchboard_synology_send_retries_total: 'counter',
};

/** Sleeps take no time: the Synology retry's backoff and the spacing between posts pass at once. */
const instantClock: DeliveryClock = {
  now: () => Date.now(),
  sleep: (_ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      setImmediate(resolve);
    }),
};

/** Stands in for the NAS: the first post fails with 500, every later one is accepted. */
class FlakyNas {
  readonly posts: string[] = [];
  readonly fetch = async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    this.posts.push(String(init?.body ?? ''));
    if (this.posts.length === 1) return new Response('', { status: 500 });
    return new Response(JSON.stringify({ success: true }), { status: 200, headers: { 'content-type': 'application/json' } });
  };
}

/** Resolves once `check` holds, trying again on each turn of a short timer; fails after `timeoutMs`. */
async function until<T>(what: string, read: () => Promise<T> | T, check: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('GET /metrics', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let runtime: Runtime;
  let gateway: Gateway;
  let dataDir: string;
  const nas = new FlakyNas();

  const scrapeText = async (): Promise<string> => {
    const response = await request(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await response.body.text();
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    return text;
  };
  const scrape = async (): Promise<Families> => parsePrometheusText(await scrapeText());

  beforeAll(async () => {
    [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
    scriptModels(small, large, {
      classify: (text) => JSON.stringify({ action: text.includes('route') ? 'route' : 'direct' }),
      smallStream: () => ({ content: ['small ', 'answer'] }),
      reason: (text) => {
        if (text.includes('fail')) return { fault: 'http_400' };
        // The first piece, then silence until the client goes away: the slot drains when it is cancelled.
        if (text.includes('stall')) return { content: ['first ', 'never'], fault: 'stall_mid_stream' };
        return { content: ['large ', 'answer'] };
      },
    });
    dataDir = mkdtempSync(join(tmpdir(), 'sb-metrics-'));
    const config = testConfig(
      {
        classifier: small,
        reasoner: large,
        config: {
          auth: { tokens: [TOKEN] },
          fallback: { reasonerToClassifier: false },
          synology: { token: SYNOLOGY_TOKEN, incomingUrl: 'http://127.0.0.1:9/webapi/entry.cgi', mode: 'incoming' },
        },
      },
      dataDir,
    );
    const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    runtime = createRuntime(config, { log });
    await runtime.start();
    gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0, synology: { clock: instantClock, fetch: nas.fetch as typeof fetch } });
    // Both backends have been probed once: their state is known and the probes are counted.
    await until('both backends up', () => runtime.status().backends, (backends) => Object.values(backends).every((b) => b.state === 'up'));
  });

  afterAll(async () => {
    await runtime?.stop(0);
    await gateway?.close();
    await Promise.all([small?.close(), large?.close()]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('needs the bearer token when auth.tokens is set', async () => {
    const refused = await request(`${gateway.url}/metrics`);
    expect(refused.statusCode).toBe(401);
    expect(await refused.body.json()).toMatchObject({ error: { type: 'unauthorized' } });
    const byQuery = await request(`${gateway.url}/metrics?token=${TOKEN}`);
    expect(byQuery.statusCode).toBe(200);
    await byQuery.body.text();
  });

  it('parses as Prometheus text with every metric typed, the process metrics, and each backend in the gauges', async () => {
    const families = await scrape();
    expect([...families.keys()].filter((name) => name.startsWith('switchboard_')).sort()).toEqual(Object.keys(OWN_METRICS).sort());
    for (const [name, type] of Object.entries(OWN_METRICS)) {
      expect(families.get(name)?.type, name).toBe(type);
      expect(families.get(name)?.help, name).toEqual(expect.any(String));
    }
    expect(families.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    expect(families.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    for (const backend of ['small', 'large']) {
      expect(sampleValue(families, 'switchboard_backend_state', { backend, state: 'up' })).toBe(1);
      expect(sampleValue(families, 'switchboard_backend_state', { backend, state: 'down' })).toBe(0);
      expect(sampleValue(families, 'switchboard_backend_state', { backend, state: 'unknown' })).toBe(0);
      const levels = ['idle', 'normal', 'busy', 'very_busy'].map((level) => sampleValue(families, 'switchboard_backend_load', { backend, level }));
      expect(levels.reduce((a, b) => a + b)).toBe(1);
      expect(sampleValue(families, 'switchboard_backend_queue_waiting', { backend })).toBe(0);
      expect(sampleValue(families, 'switchboard_backend_queue_running', { backend })).toBe(0);
      expect(sampleValue(families, 'switchboard_health_probe_duration_seconds_count', { backend, outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    }
    // Only configured backends, never anything else, in the backend label.
    const backendLabels = new Set([...families.values()].flatMap((f) => f.samples).flatMap((s) => (s.labels.backend === undefined ? [] : [s.labels.backend])));
    expect([...backendLabels].sort()).toEqual(['large', 'small']);
    expect(sampleValue(families, 'switchboard_jobs_in_flight', { state: 'active' })).toBe(0);
  });

  it('moves the counters and histograms by exactly the jobs that ran, with their branch, status and reason', async () => {
    const before = await scrape();
    const client = await TestClient.connect(`${gateway.url.replace(/^http/, 'ws')}/ws`, { authorization: `Bearer ${TOKEN}` });
    const connected = await scrape();
    expect(sampleValue(connected, 'switchboard_websocket_connections')).toBe(1);
    expect(sampleValue(connected, 'switchboard_websocket_buffered_bytes')).toBeGreaterThanOrEqual(0);

    // Over the WebSocket: direct, routed, a mode whose backend refuses (400), a routed one cancelled mid-stream.
    const direct = await client.chat('hello there');
    const routed = await client.chat('please route this');
    const failing = await client.chat('this will fail', { mode: 'deep' });
    const stalled = await client.chat('route and stall');
    await client.waitFor((f) => f.type === 'event' && f['jobId'] === stalled.jobId && f['event'] === 'result');
    client.send({ type: 'cancel', jobId: stalled.jobId });
    const ends = await Promise.all([direct, routed, failing, stalled].map(async ({ jobId }) => (await client.finished(jobId)).at(-1)));
    expect(ends.map((e) => [e?.event, e?.data['reason'] ?? null])).toEqual([
      ['done', null],
      ['done', null],
      ['error', 'backend_rejected'],
      ['cancelled', null],
    ]);

    // The OpenAI API, on a mode (stateless: counted once it is journaled after delivery).
    const openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    const completion = await openai.chat.completions.create({ model: 'daily', messages: [{ role: 'user', content: 'over the api' }] });
    expect(completion.choices[0]?.message.content).toBe('small answer');

    // The Synology webhook: the reply's first post fails with 500 and is sent again.
    const webhook = await request(`${gateway.url}/synology/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: SYNOLOGY_TOKEN, user_id: '4', username: 'alice', channel_id: '7', post_id: '99', timestamp: String(Date.now()), text: 'hello from the nas' }).toString(),
    });
    expect(webhook.statusCode).toBe(200);
    await webhook.body.text();
    await until('the reply posted again', () => nas.posts.length, (posts) => posts >= 2);

    const delta = (after: Families, name: string, labels: Record<string, string> = {}) => valueOrZero(after, name, labels) - valueOrZero(before, name, labels);
    const jobs = (after: Families, branch: string, status: string, reason = 'none') => delta(after, 'switchboard_jobs_total', { branch, status, reason });
    // Every job counted and the cancelled call's slot freed (both happen just after what the clients saw).
    const after = await until(
      'six jobs counted and a drained slot',
      scrape,
      (families) =>
        (families.get('switchboard_jobs_total')?.samples ?? []).reduce((sum, s) => sum + s.value, 0) -
          (before.get('switchboard_jobs_total')?.samples ?? []).reduce((sum, s) => sum + s.value, 0) ===
          6 && delta(families, 'switchboard_backend_slot_drain_seconds_count', { backend: 'large' }) === 1,
    );

    expect(jobs(after, 'direct', 'done')).toBe(2); // WebSocket and Synology
    expect(jobs(after, 'route', 'done')).toBe(1);
    expect(jobs(after, 'mode', 'error', 'backend_rejected')).toBe(1);
    expect(jobs(after, 'route', 'cancelled')).toBe(1);
    expect(jobs(after, 'mode', 'done')).toBe(1); // the OpenAI API
    const durations = (branch: string, status: string) => delta(after, 'switchboard_job_duration_seconds_count', { branch, status });
    expect([durations('direct', 'done'), durations('route', 'done'), durations('mode', 'error'), durations('route', 'cancelled'), durations('mode', 'done')]).toEqual([2, 1, 1, 1, 1]);
    // A first chunk for every job that streamed one: not the one whose backend refused.
    const firstChunks = (branch: string) => delta(after, 'switchboard_job_first_chunk_seconds_count', { branch });
    expect([firstChunks('direct'), firstChunks('route'), firstChunks('mode')]).toEqual([2, 2, 1]);

    // Inference calls by backend, kind and outcome: the streams exactly; the classifier's calls (and any load ping) at least.
    const calls = (backend: string, kind: string, outcome: string) => delta(after, 'switchboard_inference_duration_seconds_count', { backend, kind, outcome });
    expect(calls('small', 'stream', 'ok')).toBe(3);
    expect(calls('large', 'stream', 'ok')).toBe(1);
    expect(calls('large', 'stream', 'error')).toBe(1);
    expect(calls('large', 'stream', 'cancelled')).toBe(1);
    expect(calls('small', 'complete', 'ok')).toBeGreaterThanOrEqual(4);
    expect(sampleValue(after, 'switchboard_backend_slot_drain_seconds_sum', { backend: 'large' })).toBeGreaterThan(0);

    expect(delta(after, 'switchboard_synology_send_retries_total')).toBe(1);
    // Every job wrote its accept and its events through the ordered writer.
    expect(delta(after, 'switchboard_journal_batch_lag_seconds_count')).toBeGreaterThanOrEqual(6 * 3);

    // Nothing a client sent, no id and no token is in any label or value.
    const text = await scrapeText();
    for (const secret of [TOKEN, SYNOLOGY_TOKEN, 'alice', 'hello there', direct.jobId, direct.conversationId, stalled.jobId, completion.id]) {
      expect(text).not.toContain(secret);
    }

    client.close();
    const closed = await until('the connection gone', scrape, (families) => sampleValue(families, 'switchboard_websocket_connections') === 0);
    expect(sampleValue(closed, 'switchboard_jobs_in_flight', { state: 'active' })).toBe(0);
    for (const backend of ['small', 'large']) expect(sampleValue(closed, 'switchboard_backend_queue_running', { backend })).toBe(0);
  });
});

describe('the metrics docs', () => {
  it('the README lists every metric in a table row of its own', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [name, type] of Object.entries(OWN_METRICS)) expect(readme, name).toMatch(new RegExp(`^\\| \`${name}\` \\| ${type} \\|`, 'm'));
  });
});

describe('the strict Prometheus text parser', () => {
  it('reads prom-client-style text and refuses what the format does not allow', () => {
    const good = [
      '# HELP a_total Some help with \\\\ and \\n.',
      '# TYPE a_total counter',
      'a_total{x="q\\"uote",y="2"} 3',
      '# TYPE h histogram',
      'h_bucket{le="0.1",x="q"} 0',
      'h_bucket{le="+Inf",x="q"} 2',
      'h_sum{x="q"} 1.5',
      'h_count{x="q"} 2',
      '',
    ].join('\n');
    const families = parsePrometheusText(good);
    expect(families.get('a_total')?.help).toBe('Some help with \\ and \n.');
    expect(sampleValue(families, 'a_total', { x: 'q"uote' })).toBe(3);
    expect(sampleValue(families, 'h_count', { x: 'q' })).toBe(2);
    for (const bad of [
      'garbage line here {\n',
      'a{b="c} 3\n',
      'a{b="c"} three\n',
      'a 1\na 2\n',
      'a{b="1",b="2"} 1\n',
      '# TYPE c counter\nc -1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
      '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="y"} 2\n',
      'a 1\n# TYPE a gauge\n',
      'a 1',
    ]) {
      expect(() => parsePrometheusText(bad), JSON.stringify(bad)).toThrow();
    }
  });
});
