import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startFakeBackend } from './fakes/fake-openai-backend.js';
import { TestClient } from './helpers/gateway.js';
import { startInFolder } from './helpers/start-in-folder.js';
import { closedPort } from './helpers/closed-port.js';

/**
 * A child gateway on a new embedded database starts in 2–4 s on the 2-core VM when it is idle (9–11 s
 * when it must make the template first), and several times that when other test files run beside it.
 */
const CHILD_TIMEOUT_MS = 90_000;

describe('npm start', () => {
  it('starts with no reachable backend, says where everything is, reports the backend down (log and /status), and stops cleanly on SIGTERM', { timeout: CHILD_TIMEOUT_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-start-'));
    const configPath = join(dir, 'my-config.json');
    const port = await closedPort();
    const baseUrl = `http://127.0.0.1:${port}/v1`;
    writeFileSync(
      configPath,
      JSON.stringify({
        database: { dataDir: join(dir, 'data') },
        backends: { local: { baseUrl, model: 'm', healthIntervalMs: 200 } },
        roles: { classifier: 'local', reasoner: 'local' },
        modes: { daily: 'local' },
      }),
    );
    const gateway = await startInFolder(dir, ['--config', configPath]);
    try {
      const { url } = gateway;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      // The first start says it creates the database and how long that took; the start line says where
      // everything is.
      expect(gateway.messages[0]).toBe(`creating the embedded database in ${join(dir, 'data')} (first start)`);
      expect(gateway.messages[1]).toMatch(/^embedded database created in \d+\.\d s$/);
      expect(gateway.entries.find((e) => e.msg === 'switchboard listening')).toMatchObject({
        url,
        config: configPath,
        database: `PGlite in ${join(dir, 'data')}`,
        backends: [{ name: 'local', url: baseUrl, model: 'm' }],
      });
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
      // Without auth tokens a page whose name was rebound to 127.0.0.1 is refused.
      expect(await statusWithHost(`${url}/healthz`, 'evil.example')).toBe(403);
      let status: { backends: Record<string, { state: string }>; jobs: unknown } | undefined;
      for (let i = 0; i < 50; i++) {
        status = (await (await fetch(`${url}/status`)).json()) as typeof status;
        if (status?.backends.local?.state === 'down') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(status?.backends.local).toMatchObject({ state: 'down', queue: { waiting: 0, running: 0 } });
      expect(status?.jobs).toEqual({ active: 0, pending: 0 });
      // The log says which server and why.
      await waitFor(() => gateway.messages.some((msg) => msg.startsWith('backend down')));
      expect(gateway.entries.find((e) => e.msg.startsWith('backend down'))).toMatchObject({
        level: 40,
        backend: 'local',
        url: baseUrl,
        reason: 'backend_unavailable',
        msg: `backend down (${baseUrl}): 127.0.0.1:${port}/v1/models is unreachable (connection refused, ECONNREFUSED)`,
      });

      gateway.child.kill('SIGTERM');
      const [code] = (await once(gateway.child, 'exit')) as [number | null];
      expect(code).toBe(0);
    } finally {
      await gateway.stop();
    }
  });

  it('starts from a folder whose switchboard.config.json names one backend and nothing else, and answers', { timeout: CHILD_TIMEOUT_MS }, async () => {
    const fake = await startFakeBackend({ defaultReply: { content: JSON.stringify({ action: 'direct', response: 'Hello from the only model.' }) } });
    const dir = mkdtempSync(join(tmpdir(), 'sb-one-backend-'));
    writeFileSync(join(dir, 'switchboard.config.json'), JSON.stringify({ backends: { x: { baseUrl: fake.baseUrl, model: 'fake-model' } } }));
    // As a user runs it: from that folder, the default config file and data folder (./data), no flags.
    const gateway = await startInFolder(dir);
    let client: TestClient | undefined;
    try {
      await waitFor(() => gateway.messages.some((msg) => msg.startsWith('not in the config')));
      expect(gateway.messages).toContain('not in the config, so: roles.classifier and roles.reasoner: "x" (the only backend); modes: x (one per backend)');
      client = await TestClient.connect(gateway.wsUrl);
      const { jobId } = await client.chat('hello there');
      const events = await client.finished(jobId, 30_000);
      expect(events.at(-1)?.event).toBe('done');
      expect(client.answer(jobId)).toBe('Hello from the only model.');
      const mode = await client.chat('straight to x', { mode: 'x' });
      expect((await client.finished(mode.jobId, 30_000)).at(-1)?.event).toBe('done');
    } finally {
      client?.close();
      await gateway.stop();
      await fake.close();
    }
  });

  it('refuses an invalid config with one line per problem and a non-zero exit', { timeout: CHILD_TIMEOUT_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-start-'));
    const configPath = join(dir, 'bad.json');
    writeFileSync(configPath, JSON.stringify({ roles: { classifier: 'x', reasoner: 'local' }, extra: true }));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configPath], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, SWITCHBOARD_TOKEN: '    ' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(1);
    expect(stderr).toContain('extra: unknown key');
    expect(stderr).toContain('auth.tokens.0 (SWITCHBOARD_TOKEN): expected a token, got an empty or blank string');
  });
});

/** The status of a GET with its own `Host` header (fetch does not let a caller set it). */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `check` until it holds (the log line after "listening" arrives a moment later). */
async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
