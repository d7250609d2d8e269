import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/** 200 jobs over 50 connections at once, through the real gateway: nothing lost, nothing doubled. */

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => JSON.stringify(text.startsWith('deep') ? { action: 'route' } : { action: 'direct', response: `ok ${text}` }),
    reason: (text) => ({ content: ['a ', 'b ', 'c ', text] }),
  });
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    // A small cap so that jobs also wait for a place and get `queued` events.
    config: { limits: { maxActiveJobs: 16 } },
  });
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  await small?.close();
  await large?.close();
});

describe('200 jobs over 50 connections', () => {
  it('ends every job with exactly one terminal event and contiguous seqs', async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, () => TestClient.connect(gateway.wsUrl)));
    // Each connection sends four messages at once: the first opens a conversation, the other three join
    // it as soon as it is known, so they wait behind each other in that conversation.
    const jobs = (
      await Promise.all(
        clients.map(async (client, c) => {
          const texts = Array.from({ length: 4 }, (_, i) => `${i % 2 === 0 ? 'deep' : 'quick'} ${c}-${i}`);
          const first = await client.chat(texts[0] as string);
          const rest = await Promise.all(texts.slice(1).map((text) => client.chat(text, { conversationId: first.conversationId })));
          return [first, ...rest].map((accepted, i) => ({ client, ...accepted, text: texts[i] as string }));
        }),
      )
    ).flat();
    expect(new Set(jobs.map((j) => j.jobId)).size).toBe(200);
    for (const job of jobs) {
      const events = await job.client.finished(job.jobId, 60_000);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const terminals = events.filter((e) => ['done', 'error', 'cancelled'].includes(e.event));
      expect(terminals).toHaveLength(1);
      expect(events.at(-1)?.event).toBe('done');
      expect(job.client.answer(job.jobId)).toBe(job.text.startsWith('deep') ? `a b c ${job.text}` : `ok ${job.text}`);
    }
    // Give stray events a moment to show up (there must be none after the terminal ones).
    await new Promise((r) => setTimeout(r, 200));
    for (const job of jobs) {
      const events = job.client.events(job.jobId);
      expect(events.at(-1)?.event).toBe('done');
      expect(new Set(events.map((e) => e.seq)).size).toBe(events.length);
    }
    const queued = jobs.filter((j) => j.client.events(j.jobId).some((e) => e.event === 'queued'));
    expect(queued.length).toBeGreaterThan(0);
    // Jobs of one conversation ran one at a time: each started after the previous one had ended.
    for (const client of clients) {
      const own = jobs.filter((j) => j.client === client);
      for (let i = 1; i < own.length; i++) {
        const previousEnd = Date.parse(String(client.events(own[i - 1]!.jobId).at(-1)?.at));
        const ack = client.events(own[i]!.jobId).find((e) => e.event === 'ack');
        expect(Date.parse(String(ack?.at))).toBeGreaterThanOrEqual(previousEnd);
      }
    }
    expect(gateway.runtime.status().jobs).toEqual({ active: 0, pending: 0 });
    for (const client of clients) client.close();
  }, 120_000);
});
