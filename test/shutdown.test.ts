import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { TestClient } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/**
 * SIGTERM with jobs running: new messages are refused, a job that ends within the grace period ends
 * normally, one that would not is cancelled (its backend request aborted), and the process exits 0.
 */

let small: FakeBackend;
let large: FakeBackend;
let dir: string;
let gateway: ChildGateway | undefined;

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: () => JSON.stringify({ action: 'route' }),
    reason: (text) =>
      text.includes('endless')
        ? { content: Array.from({ length: 10_000 }, () => 'z '), chunkDelayMs: 20 }
        : { content: Array.from({ length: 20 }, () => 'q '), chunkDelayMs: 50 },
  });
  dir = mkdtempSync(join(tmpdir(), 'sb-shutdown-'));
});

afterAll(async () => {
  await gateway?.kill('SIGKILL');
  await small.close();
  await large.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('graceful shutdown', () => {
  it('lets short jobs finish, cancels the rest, refuses new work, and exits 0', async () => {
    gateway = await startChildGateway(dir, childConfig(dir, small, large, { backend: { concurrency: 4 }, shutdown: { graceMs: 2_000 } }));
    const client = await TestClient.connect(gateway.wsUrl);
    const short = await client.chat('a short one');
    const endless = await client.chat('an endless one');
    await client.waitFor((f) => f.type === 'event' && f.jobId === endless.jobId && f.event === 'result');

    const exited = gateway.kill('SIGTERM');
    // While the grace period runs, the server refuses new messages but keeps streaming to its clients.
    await new Promise((r) => setTimeout(r, 300));
    const from = client.frames.length;
    client.send({ type: 'chat', text: 'too late' });
    const refusal = await client.waitFor((f) => f.type === 'error', 5_000, from);
    expect(String(refusal.message)).toMatch(/shutting down/);

    const shortEvents = await client.finished(short.jobId, 10_000);
    expect(shortEvents.at(-1)?.event).toBe('done');
    const endlessEvents = await client.finished(endless.jobId, 10_000);
    expect(endlessEvents.at(-1)?.event).toBe('cancelled');
    const aborted = await large.waitForClientAbort(5_000);
    expect(aborted.clientAborted).toBe(true);
    expect(await exited).toBe(0);
    client.close();
  }, 30_000);
});
