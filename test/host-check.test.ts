import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/config-schema.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { createHostCheck } from '../src/transport/host-check.js';
import { startHttpServer, type RunningHttpServer } from '../src/transport/http-server.js';
import { capturingLog } from './helpers/ws-harness.js';

describe('createHostCheck', () => {
  it('without tokens accepts loopback names and the configured hosts, with any port, and nothing else', () => {
    const allowed = createHostCheck({ tokens: [], hosts: ['127.0.0.7', '::1', 'Gateway.Local'] });
    for (const host of ['localhost', 'localhost:8787', 'LocalHost:1', '127.0.0.1', '127.0.0.1:8787', '[::1]', '[::1]:8787', '127.0.0.7:8787', 'gateway.local', 'GATEWAY.LOCAL:80', undefined]) {
      expect(allowed(host), String(host)).toBe(true);
    }
    for (const host of ['evil.example', 'evil.example:8787', 'localhost.evil.example', 'localhost:', 'localhost:abc', 'localhost:123456', '::1', '[::2]:8787', '127.0.0.2', '0.0.0.0', '', ' ', 'localhost 127.0.0.1', 'user@localhost']) {
      expect(allowed(host), host).toBe(false);
    }
  });

  it('never takes an unspecified address (0.0.0.0, ::) as a name of the server', () => {
    const allowed = createHostCheck({ tokens: [], hosts: ['0.0.0.0', '::'] });
    expect(allowed('0.0.0.0:8787')).toBe(false);
    expect(allowed('[::]:8787')).toBe(false);
    expect(allowed('localhost:8787')).toBe(true);
  });

  it('with tokens accepts any Host', () => {
    const allowed = createHostCheck({ tokens: ['token-aaaaaaaa'], hosts: ['127.0.0.1'] });
    expect(allowed('gateway.lan.example:8787')).toBe(true);
  });
});

describe('HTTP Host check without auth (DNS rebinding)', () => {
  const servers: RunningHttpServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  async function serve(tokens: string[] = []) {
    const config = configSchema.parse({ auth: { tokens } });
    const runtime = {
      config,
      health: async () => ({ ok: true }),
      status: () => ({ backends: {}, jobs: { active: 0, pending: 0 } }),
    } as unknown as Runtime;
    const { log, lines } = capturingLog('info');
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, runtime, log });
    servers.push(server);
    return { server, lines };
  }

  function get(url: string, path: string, host: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, { headers: { host } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('refuses every route for a foreign Host with 403 and a one-line JSON body, logged once per address', async () => {
    const { server, lines } = await serve();
    const port = new URL(server.url).port;
    for (const path of ['/healthz', '/status', '/nothing']) {
      const reply = await get(server.url, path, `evil.example:${port}`);
      expect(reply.status).toBe(403);
      expect(reply.body).not.toContain('\n');
      expect(JSON.parse(reply.body)).toEqual({ error: { type: 'forbidden', message: expect.stringMatching(/Host/) } });
    }
    expect(lines.filter((line) => String(line.msg).startsWith('http request refused'))).toEqual([
      expect.objectContaining({ status: 403, reason: 'foreign_host', remote: '127.0.0.1' }),
    ]);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await get(server.url, '/healthz', host)).status, host).toBe(200);
    }
  });

  it('serves any Host when auth tokens are configured', async () => {
    const { server } = await serve(['token-aaaaaaaa']);
    expect((await get(server.url, '/healthz', 'gateway.lan.example')).status).toBe(200);
  });
});
