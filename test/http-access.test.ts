/**
 * Access control on every door (DESIGN §5): with `auth.tokens` set, every route but `/healthz` needs the
 * bearer token — the WebSocket, the OpenAI API, `/status`, `/metrics`, any other path — and answers 401
 * with a one-line JSON body without it; the Synology webhook checks Synology's own token instead. Routes
 * that take no body refuse one with 413. Real gateway on port 0, real clients (undici, ws).
 */
import { request } from 'undici';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

const TOKEN = 'http-access-test-token';
const SYNOLOGY_TOKEN = 'synology-outgoing-token';

/** Every guarded door, as a method and a path (with a body where the route reads one). */
const GUARDED: Array<{ method: 'GET' | 'POST'; path: string; body?: string }> = [
  { method: 'GET', path: '/status' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/v1/models' },
  { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }) },
  { method: 'GET', path: '/no-such-route' },
];

describe('access control with auth.tokens set', () => {
  let classifier: FakeBackend;
  let reasoner: FakeBackend;
  let gateway: TestGateway;

  beforeAll(async () => {
    [classifier, reasoner] = await Promise.all([startFakeBackend(), startFakeBackend()]);
    scriptModels(classifier, reasoner, { classify: () => JSON.stringify({ action: 'direct', response: 'hello there' }) });
    gateway = await startTestGateway({
      classifier,
      reasoner,
      config: { auth: { tokens: [TOKEN] }, synology: { token: SYNOLOGY_TOKEN, incomingUrl: `${classifier.baseUrl}/nas`, mode: 'incoming' } },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([classifier?.close(), reasoner?.close()]);
  });

  it('answers 401 with a one-line JSON body on every guarded door without the token, or with a wrong one', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-the-token' }, { authorization: `Basic ${TOKEN}` }]) {
      for (const door of GUARDED) {
        const response = await request(`${gateway.url}${door.path}`, {
          method: door.method,
          headers: { ...headers, ...(door.body ? { 'content-type': 'application/json' } : {}) },
          ...(door.body ? { body: door.body } : {}),
        });
        const text = await response.body.text();
        expect(response.statusCode, `${door.method} ${door.path} with ${JSON.stringify(headers)}`).toBe(401);
        expect(response.headers['www-authenticate']).toBe('Bearer');
        expect(response.headers['content-type']).toMatch(/^application\/json/);
        expect(text).not.toContain('\n');
        expect(JSON.parse(text)).toMatchObject({ error: { type: expect.any(String), message: expect.any(String) } });
        expect(text).not.toContain(TOKEN);
      }
    }
  });

  it('refuses the WebSocket upgrade with 401 without the token', async () => {
    for (const options of [{}, { headers: { authorization: 'Bearer not-the-token' } }]) {
      const socket = new WebSocket(gateway.wsUrl, options);
      const status = await new Promise<number>((resolve, reject) => {
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.once('open', () => reject(new Error('the upgrade was accepted')));
        socket.once('error', reject);
      });
      expect(status).toBe(401);
      socket.terminate();
    }
  });

  it('keeps /healthz open', async () => {
    const response = await request(`${gateway.url}/healthz`);
    expect(response.statusCode).toBe(200);
    expect(await response.body.json()).toEqual({ ok: true });
  });

  it('lets the Synology webhook check its own token: a wrong one is 403 (not 401), and nothing runs', async () => {
    const response = await request(`${gateway.url}/synology/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: 'wrong', user_id: '7', text: 'hello' }).toString(),
    });
    await response.body.text();
    expect(response.statusCode).toBe(403);
    expect(gateway.runtime.status().jobs).toEqual({ active: 0, pending: 0 });
  });

  it('with the token, every door works: /status, /metrics, the API, the WebSocket (bearer header or ?token=)', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const status = await request(`${gateway.url}/status`, { headers: auth });
    expect(status.statusCode).toBe(200);
    expect(await status.body.json()).toMatchObject({ backends: { small: expect.any(Object), large: expect.any(Object) }, jobs: expect.any(Object) });

    const metrics = await request(`${gateway.url}/metrics`, { headers: auth });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.body.text()).toContain('# TYPE switchboard_jobs_total counter');

    const byQuery = await request(`${gateway.url}/status?token=${TOKEN}`);
    expect(byQuery.statusCode).toBe(200);
    await byQuery.body.text();

    const models = await request(`${gateway.url}/v1/models`, { headers: auth });
    expect(models.statusCode).toBe(200);
    await models.body.text();

    const completion = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(completion.statusCode).toBe(200);
    expect(await completion.body.json()).toMatchObject({ choices: [{ message: { content: 'hello there' } }] });

    // Past the gate, a route that does not exist is a 404 (never a 401 with the right token).
    const missing = await request(`${gateway.url}/no-such-route`, { headers: auth });
    expect(missing.statusCode).toBe(404);
    await missing.body.text();

    const client = await TestClient.connect(`${gateway.wsUrl}?token=${TOKEN}`);
    const { jobId } = await client.chat('hi');
    await client.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && f['event'] === 'done', 10_000);
    client.close();
  });

  it('refuses a body on a route that takes none with 413, and keeps serving', async () => {
    const withBody = await request(`${gateway.url}/status`, { method: 'GET', headers: { authorization: `Bearer ${TOKEN}`, 'content-length': '5' }, body: 'hello' });
    expect(withBody.statusCode).toBe(413);
    expect(await withBody.body.json()).toMatchObject({ error: { type: 'too_large' } });
    const healthz = await request(`${gateway.url}/healthz`, { method: 'GET', headers: { 'content-length': '5' }, body: 'hello' });
    expect(healthz.statusCode).toBe(413);
    await healthz.body.text();

    const after = await request(`${gateway.url}/healthz`);
    expect(after.statusCode).toBe(200);
    await after.body.text();
  });
});
