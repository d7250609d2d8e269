/**
 * Bounded and fair (issue 9, "Must show"): one owner with 100 connections × 20 chats cannot starve
 * another owner's message. Jobs waiting for a place under `limits.maxActiveJobs` are served round robin
 * across owners, so owner B's one message is answered while most of owner A's 2000 still wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { gate } from './helpers/frames.js';
import { classifiedText } from './helpers/scripted-models.js';
import { isTerminalEvent, JobClient, startTunedGateway, waitUntil, type TunedGateway } from './helpers/tuned-gateway.js';

const TOKEN_A = 'owner-alpha-token-7Rk2Qm';
const TOKEN_B = 'owner-bravo-token-9Tz4Wd';
const CONNECTIONS = 100;
const CHATS_PER_CONNECTION = 20;
const A_JOBS = CONNECTIONS * CHATS_PER_CONNECTION;
const MAX_ACTIVE = 8;

describe('two owners, one with 100 connections × 20 chats', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TunedGateway;
  const held = gate();
  let holding = true;

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    // Classifications wait until the test lets them go: A's whole backlog and B's message are in line
    // before anything is served, so the order of service is the line's alone.
    small.setDefault(async (body): Promise<FakeReply> => {
      const text = classifiedText(body);
      if (text === null) return { content: ['small ', 'answer'] };
      if (holding) await held.promise;
      return { content: JSON.stringify({ action: 'direct', response: `ok ${text}` }) };
    });
    gateway = await startTunedGateway({
      small,
      large,
      // A's classifications are held for a while: give them time before the first-byte timeout.
      backends: { small: { timeoutMs: 60_000 } },
      config: {
        auth: { tokens: [TOKEN_A, TOKEN_B] },
        limits: { maxActiveJobs: MAX_ACTIVE, connectionsPerOwner: CONNECTIONS + 10, pendingJobsPerOwner: A_JOBS + 100 },
      },
    });
  }, 30_000);

  afterAll(async () => {
    held.open();
    await gateway?.close();
    await small?.close();
    await large?.close();
  }, 60_000);

  it("answers B's message before A's backlog has drained", async () => {
    const alice = await Promise.all(Array.from({ length: CONNECTIONS }, () => JobClient.connect(gateway.wsUrl, TOKEN_A)));
    const aJobs = (
      await Promise.all(
        alice.map(async (client, c) => {
          const texts = Array.from({ length: CHATS_PER_CONNECTION }, (_, i) => `alpha ${c}-${i}`);
          return (await client.chatMany(texts)).map((accepted) => ({ client, ...accepted }));
        }),
      )
    ).flat();
    expect(new Set(aJobs.map((job) => job.jobId)).size).toBe(A_JOBS);
    await waitUntil(async () => {
      const { jobs } = await gateway.status();
      return jobs.active === MAX_ACTIVE && jobs.active + jobs.pending === A_JOBS;
    }, 10_000, "A's backlog in line");

    const bob = await JobClient.connect(gateway.wsUrl, TOKEN_B);
    const b = await bob.chat('bravo needs an answer');
    // B is parked behind A's ~2000 jobs in arrival order, but second in the fair order.
    const told = await waitUntil(() => bob.of(b.jobId).find((e) => e.event === 'queued'), 5_000, "B's place in line");
    expect(Number(told.data.position)).toBeLessThanOrEqual(2);

    holding = false;
    held.open();
    const events = await bob.finished(b.jobId, 30_000);
    const aFinished = alice.reduce((sum, client) => sum + aJobs.filter((job) => job.client === client && client.of(job.jobId).some(isTerminalEvent)).length, 0);
    const { jobs: left } = await gateway.status();

    expect(events.at(-1)?.event).toBe('done');
    expect(bob.answer(b.jobId)).toBe('ok bravo needs an answer');
    // Answered while at least half of A's jobs were unfinished (in fact after a handful of them).
    expect(aFinished).toBeLessThan(A_JOBS / 2);
    expect(left.active + left.pending).toBeGreaterThan(A_JOBS / 2);
    console.info(`fair owners: B done after ${aFinished} of A's ${A_JOBS} jobs; ${left.active + left.pending} still in line`);

    for (const client of [...alice, bob]) client.close();
  }, 90_000);
});
