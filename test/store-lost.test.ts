/**
 * The embedded database's worker thread dying under a running gateway ends the process with a non-zero
 * code after a clean shutdown attempt: a fatal log line says why, the client of a running job hears of
 * it (a terminal event, or its connection closing), and the process exits by itself within seconds.
 *
 * The gateway is the real entry point (`src/main.ts`) in a child process, with a test-only preload
 * (`helpers/kill-pglite-worker.mjs`) that terminates the PGlite worker thread on SIGUSR2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig } from './helpers/child-gateway.js';
import { TestClient } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/** The gateway exits by itself this soon after its database thread died (main.ts forces an exit at 5 s). */
const EXITS_WITHIN_MS = 6_000;
/** The client of a running job hears of it this soon. */
const CLIENT_HEARS_WITHIN_MS = 5_000;

/** A gateway process started with the worker-killing preload. */
interface PreloadedGateway {
  child: ChildProcess;
  wsUrl: string;
  /** Its stdout, one JSON log line each. */
  logs: Array<{ level?: number; msg?: string; why?: string; reason?: string; [key: string]: unknown }>;
  stderr: () => string;
  /** Resolves with how the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** Starts `src/main.ts` like `npm start`, plus `--import helpers/kill-pglite-worker.mjs`; resolves once it listens. */
async function startPreloadedGateway(dir: string, config: Record<string, unknown>): Promise<PreloadedGateway> {
  const configPath = join(dir, 'switchboard.config.json');
  writeFileSync(configPath, JSON.stringify(config));
  const preload = new URL('./helpers/kill-pglite-worker.mjs', import.meta.url).href;
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', preload, 'src/main.ts', '--config', configPath], {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, VITEST: '', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const logs: PreloadedGateway['logs'] = [];
  const lines = createInterface({ input: child.stdout! });
  // The time of the exit itself, but resolved only once every line it wrote has been read: `exit` can come
  // before the last lines of its stdout have.
  const exitedAt = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const allRead = new Promise<void>((resolve) => lines.once('close', resolve));
  const exited = Promise.all([exitedAt, allRead]).then(([exit]) => exit);
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      let entry: PreloadedGateway['logs'][number];
      try {
        entry = JSON.parse(line) as PreloadedGateway['logs'][number];
      } catch {
        return; // not a log line
      }
      logs.push(entry);
      if (entry.msg === 'switchboard listening' && typeof entry['url'] === 'string') resolve(entry['url']);
    });
    void exitedAt.then(({ code, signal }) => reject(new Error(`the gateway exited (${code ?? signal}) before listening: ${stderr}`)));
  });
  return { child, wsUrl: `${url.replace(/^http/, 'ws')}/ws`, logs, stderr: () => stderr, exited };
}

describe('the embedded database thread dies under a running gateway', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let dir: string;
  let gateway: PreloadedGateway | undefined;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    scriptModels(small, large, {
      classify: () => JSON.stringify({ action: 'route' }),
      // Streams for about 20 s: still running when the database goes.
      reason: () => ({ content: Array.from({ length: 400 }, (_, i) => `w${i} `), chunkDelayMs: 50 }),
    });
    dir = mkdtempSync(join(tmpdir(), 'sb-store-lost-'));
  });

  afterAll(async () => {
    if (gateway !== undefined && gateway.child.exitCode === null && gateway.child.signalCode === null) {
      gateway.child.kill('SIGKILL');
      await gateway.exited;
    }
    await small?.close();
    await large?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs a fatal line, tells the client, shuts down and exits non-zero by itself', async () => {
    gateway = await startPreloadedGateway(dir, childConfig(dir, small, large, { backend: { timeoutMs: 5_000, streamDeadlineMs: 60_000 } }));
    const client = await TestClient.connect(gateway.wsUrl);
    const closed = new Promise<number>((resolve) => client.socket.once('close', (code) => resolve(code)));
    const { jobId } = await client.chat('tell me a long story');
    await client.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && f['event'] === 'result', 10_000);

    const killedAt = Date.now();
    gateway.child.kill('SIGUSR2');

    // The preload found the database thread and ended it.
    await vi.waitFor(() => expect(gateway!.stderr()).toContain('kill-pglite-worker: terminating 1 worker(s)'), { timeout: 2_000 });

    // A fatal log line about the embedded database.
    await vi.waitFor(
      () => expect(gateway!.logs).toContainEqual(expect.objectContaining({ level: 60, msg: expect.stringContaining('embedded database'), reason: 'store_unavailable' })),
      { timeout: 2_000 },
    );

    // The client of the running job hears of it: its terminal event, or its connection closing — never `done`.
    const heard = await Promise.race([
      client.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && ['done', 'error', 'cancelled'].includes(String(f['event'])), CLIENT_HEARS_WITHIN_MS).then(
        (terminal) => ({ terminal, at: Date.now() }),
      ),
      closed.then((code) => ({ closedWith: code, at: Date.now() })),
    ]);
    expect(heard.at - killedAt).toBeLessThan(CLIENT_HEARS_WITHIN_MS);
    const events = client.events(jobId);
    expect(events.map((e) => e.event)).not.toContain('done');
    const terminal = events.find((e) => ['error', 'cancelled'].includes(e.event));
    if (terminal !== undefined) {
      expect(terminal).toMatchObject({ event: 'error', data: { reason: 'store_unavailable' } });
      expect(events.at(-1)).toBe(terminal);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    }

    // The process ends by itself, non-zero, within seconds: not killed, not waiting for a signal.
    const exit = await Promise.race([
      gateway.exited,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), EXITS_WITHIN_MS + 2_000 - (Date.now() - killedAt))),
    ]);
    expect(exit, 'the gateway is still running').not.toBeNull();
    expect(exit!.signal).toBeNull();
    expect(exit!.code).toBe(1);
    expect(exit!.at - killedAt).toBeLessThan(EXITS_WITHIN_MS);

    // After a clean shutdown: it said why it shut down, and got to the end of it (the exit main.ts forces
    // after 5 s is a fallback for a shutdown that hangs), its connections closed.
    const messages = gateway.logs.map((entry) => entry.msg);
    const fatalAt = gateway.logs.findIndex((entry) => entry.level === 60);
    expect(gateway.logs.slice(fatalAt)).toContainEqual(expect.objectContaining({ msg: 'shutting down', why: 'the embedded database stopped' }));
    expect(messages.slice(messages.indexOf('shutting down')), `log: ${JSON.stringify(messages)}; stderr: ${gateway.stderr()}`).toContain('stopped');
    await closed;
    client.close();
  }, 30_000);
});
