import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { runScript } from './helpers/run-script.js';

/** `npm run fake-backend`: the fake model server a new user tries the gateway with. */
describe('npm run fake-backend', () => {
  it('serves the built-in config’s, the example’s and the README one-backend example’s models, sends classifications to the reasoner and streams a scripted answer', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/fake-backend.ts', '--port', '0'], {
      cwd: new URL('..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
      const baseUrl = /on (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(line)?.[1];
      expect(baseUrl).toBeDefined();
      const models = (await (await fetch(`${baseUrl}/models`)).json()) as { data: Array<{ id: string }> };
      expect(models.data.map((m) => m.id)).toEqual(['llama3.2', 'qwen3:4b', 'qwen3:14b', 'qwen3:8b']);

      const classify = await fetch(`${baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: '[now]\nx\n[history]\n\n[message]\nhello' }] }),
      });
      const decision = (await classify.json()) as { choices: Array<{ message: { content: string } }> };
      expect(JSON.parse(decision.choices[0]!.message.content)).toEqual({ action: 'route' });

      const stream = await fetch(`${baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2', stream: true, messages: [{ role: 'user', content: 'hello' }] }),
      });
      const body = await stream.text();
      const text = body
        .split('\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => (JSON.parse(l.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
        .join('');
      expect(text).toContain("This is Switchboard's fake model server. Your message had 5 characters.");
      expect(body.trim().endsWith('data: [DONE]')).toBe(true);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  it('says in one sentence that a port is taken, and exits 1', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const port = (taken.address() as { port: number }).port;
      const run = await runScript('scripts/fake-backend.ts', ['--port', String(port)]);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(`fake-backend: port ${port} is in use (a model server already running?); choose another with --port\n`);
    } finally {
      taken.close();
    }
  });
});
