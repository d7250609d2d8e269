import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { TestClient } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/**
 * A gateway killed with SIGKILL in the middle of a streamed answer: after a restart the conversation's
 * earlier turns are still sent to the model, and the interrupted job replays to `error`/`interrupted`.
 */

let small: FakeBackend;
let large: FakeBackend;
let dir: string;
const gateways: ChildGateway[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => JSON.stringify(text === 'hello' ? { action: 'direct', response: 'Hello, I remember you.' } : { action: 'route' }),
    reason: (text) =>
      text.includes('long') ? { content: Array.from({ length: 400 }, (_, i) => `w${i} `), chunkDelayMs: 25 } : { content: ['short ', 'answer'] },
  });
  dir = mkdtempSync(join(tmpdir(), 'sb-restart-'));
});

afterAll(async () => {
  for (const gateway of gateways) await gateway.kill('SIGKILL');
  await small.close();
  await large.close();
  rmSync(dir, { recursive: true, force: true });
});

const config = () => childConfig(dir, small, large, { backend: { timeoutMs: 5_000 } });

describe('kill -9 during a streamed answer, then start again', () => {
  it('keeps the history and ends the interrupted job with error/interrupted', async () => {
    const first = await startChildGateway(dir, config());
    gateways.push(first);
    const client = await TestClient.connect(first.wsUrl);
    const greeting = await client.chat('hello');
    await client.finished(greeting.jobId);
    const long = await client.chat('tell me something long', { conversationId: greeting.conversationId });
    await client.waitFor((f) => f.type === 'event' && f.jobId === long.jobId && f.event === 'result');
    await new Promise((r) => setTimeout(r, 200));
    const seenBeforeKill = client.events(long.jobId).length;
    expect(await first.kill('SIGKILL')).toBe(null);
    client.close();

    const second = await startChildGateway(dir, config());
    gateways.push(second);
    const again = await TestClient.connect(second.wsUrl);

    // The interrupted job replays from the journal and ends with error/interrupted.
    again.send({ type: 'subscribe', jobId: long.jobId });
    await again.finished(long.jobId);
    const replay = again.events(long.jobId);
    expect(replay.map((e) => e.seq)).toEqual(replay.map((_, i) => i + 1));
    expect(replay[0]?.event).toBe('ack');
    expect(replay.at(-1)).toMatchObject({ event: 'error', data: { reason: 'interrupted' } });
    expect(replay.filter((e) => ['done', 'error', 'cancelled'].includes(e.event))).toHaveLength(1);
    // Events the client saw before the kill may include a few the journal had not flushed yet; every
    // flushed one is in the replay, in the same order.
    expect(replay.length).toBeGreaterThan(1);
    expect(seenBeforeKill).toBeGreaterThan(1);

    // The conversation's earlier turns are still in the history sent to the model.
    const next = await again.chat('and now something short', { conversationId: greeting.conversationId });
    const events = await again.finished(next.jobId);
    expect(events.at(-1)?.event).toBe('done');
    const sent = large.chatRequests.at(-1)?.body?.messages.map((m) => m.content) ?? [];
    expect(sent).toContain('hello');
    expect(sent).toContain('Hello, I remember you.');
    expect(sent).toContain('tell me something long');
    expect(sent.at(-1)).toBe('and now something short');
    again.close();

    // A clean stop: SIGTERM exits 0.
    expect(await second.kill('SIGTERM')).toBe(0);
  }, 60_000);
});
