/**
 * `--inspect`: every actor reports to `@statelyai/inspect`'s WebSocket inspector, whose events reach a
 * receiver on the local relay — and nobody else (loopback only, no foreign browser origin).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseStartArgs } from '../src/cli/start-options.js';
import { startStatelyInspector, type StatelyInspector } from '../src/inspect/stately-inspector.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig } from './helpers/child-gateway.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/** A Stately inspection message as the relay passes it on. */
interface Inspected {
  type: string;
  sessionId: string;
  name?: string;
  parentId?: string;
  event?: { type: string };
  snapshot?: { value?: unknown; status?: string };
}

/** A plain `ws` client on the relay, like the inspector page's (which forwards what it gets to the Stately UI). */
class Receiver {
  readonly messages: Inspected[] = [];
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => this.messages.push(JSON.parse(String(data)) as Inspected));
  }

  static async connect(url: string, origin?: string): Promise<Receiver> {
    const socket = new WebSocket(url, origin === undefined ? {} : { origin });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new Receiver(socket);
  }

  async until<T>(find: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`the receiver never got ${what}; got ${this.messages.length} messages`);
      await new Promise<void>((resolve) => this.socket.once('message', () => resolve()));
    }
  }
}

let small: FakeBackend;
let large: FakeBackend;
let inspector: StatelyInspector;
let gateway: TestGateway;
let receiver: Receiver;

beforeAll(async () => {
  [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
  scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }) });
  inspector = await startStatelyInspector({ port: 0 });
  // Connected from the relay's own page (as a browser opening it would be).
  receiver = await Receiver.connect(inspector.wsUrl, new URL(inspector.pageUrl).origin);
  gateway = await startTestGateway({ classifier: small, reasoner: large, deps: { inspect: inspector.inspect } });
}, 60_000);
afterAll(async () => {
  receiver?.socket.close();
  await gateway?.close();
  await inspector?.stop();
  await Promise.all([small?.close(), large?.close()]);
});

describe('--inspect', () => {
  it("a chat job's actor, its events and snapshots, and the backends with their health machines reach a local receiver", async () => {
    const client = await TestClient.connect(gateway.wsUrl);
    const { jobId } = await client.chat('hello inspector');
    const events = await client.finished(jobId);
    expect(events.at(-1)?.event).toBe('done');
    client.close();

    const job = await receiver.until(() => receiver.messages.find((m) => m.type === '@xstate.actor' && m.name === `job:${jobId}`), 'the job actor');
    const jobEvents = await receiver.until(() => {
      const got = receiver.messages.filter((m) => m.type === '@xstate.event' && m.sessionId === job.sessionId).map((m) => m.event?.type);
      return got.includes('infer.chunk') && got.includes('infer.done') ? got : undefined;
    }, "the job's events");
    expect(jobEvents).toContain('xstate.init');
    const values = await receiver.until(() => {
      const got = receiver.messages.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === job.sessionId).map((m) => m.snapshot?.value);
      return got.includes('done') ? got : undefined;
    }, "the job's snapshots");
    expect(values).toContainEqual({ route: { streaming: 'waiting' } });
    // Its children (the inference calls) and the other actors: supervisor, conversation, backends and health.
    await receiver.until(() => receiver.messages.find((m) => m.type === '@xstate.actor' && m.parentId === job.sessionId), "the job's children");
    const actors = receiver.messages.filter((m) => m.type === '@xstate.actor');
    for (const name of ['supervisor', 'backend:small', 'backend:large', 'job-events']) expect(actors.map((m) => m.name)).toContain(name);
    expect(actors.some((m) => m.name?.startsWith('conversation:'))).toBe(true);
    const backend = actors.find((m) => m.name === 'backend:large')!;
    const health = actors.find((m) => m.parentId === backend.sessionId);
    expect(health).toBeDefined();
    expect(receiver.messages.some((m) => m.type === '@xstate.snapshot' && m.sessionId === health!.sessionId)).toBe(true);
  });

  it('the relay listens on loopback only, serves the page that embeds the Stately inspector, and refuses another site in the browser', async () => {
    expect(inspector.pageUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(inspector.wsUrl).toBe(inspector.pageUrl.replace(/^http/, 'ws').replace(/\/$/, ''));
    const page = await fetch(inspector.pageUrl);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('https://stately.ai/inspect');
    expect(html).toContain(JSON.stringify(inspector.wsUrl));
    await expect(Receiver.connect(inspector.wsUrl, 'https://evil.example')).rejects.toThrow(/403/);
  });

  it('npm start takes --inspect (default port) and --inspect=PORT, and refuses a bad port', () => {
    expect(parseStartArgs([])).toMatchObject({ kind: 'start', inspect: undefined });
    expect(parseStartArgs(['--inspect'])).toMatchObject({ kind: 'start', inspect: 8080 });
    expect(parseStartArgs(['--inspect=0', '-c', 'x.json'])).toMatchObject({ kind: 'start', inspect: 0, config: 'x.json' });
    expect(parseStartArgs(['--inspect=9229'])).toMatchObject({ kind: 'start', inspect: 9229 });
    expect(parseStartArgs(['--inspect=http'])).toEqual({ kind: 'usage-error', message: '--inspect=PORT needs a port number (0–65535), not "http"' });
    expect(parseStartArgs(['--inspect=70000'])).toMatchObject({ kind: 'usage-error' });
  });
});

describe('npm start -- --inspect=0', () => {
  it('prints the page to open, and a chat job of the running gateway reaches a receiver on its relay', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-inspect-'));
    const configPath = join(dir, 'switchboard.config.json');
    writeFileSync(configPath, JSON.stringify(childConfig(dir, small, large)));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configPath, '--inspect=0'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, VITEST: '', LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      // The page is logged on the line after the start line: wait for both.
      const { url, page } = await new Promise<{ url: string; page: string }>((resolve, reject) => {
        let listening = '';
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const entry = JSON.parse(line) as { msg?: string; url?: string; inspector?: string };
          if (entry.msg === 'switchboard listening' && entry.url) listening = entry.url;
          if (entry.inspector) resolve({ url: listening, page: entry.inspector });
        });
        child.once('exit', (code) => reject(new Error(`the gateway exited with ${code}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(page).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const listener = await Receiver.connect(page.replace(/^http/, 'ws').replace(/\/$/, ''));
      const client = await TestClient.connect(`${url.replace(/^http/, 'ws')}/ws`);
      const { jobId } = await client.chat('hello from the child');
      await client.finished(jobId);
      client.close();
      const job = await listener.until(() => listener.messages.find((m) => m.type === '@xstate.actor' && m.name === `job:${jobId}`), 'the job actor');
      await listener.until(() => listener.messages.find((m) => m.type === '@xstate.snapshot' && m.sessionId === job.sessionId && m.snapshot?.value === 'done'), 'its last snapshot');
      listener.socket.close();
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'close');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
