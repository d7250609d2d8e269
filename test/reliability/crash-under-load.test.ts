/**
 * Reliability suite, crash (issue 14, item 2): `kill -9` under load, restart on the same PGlite folder.
 *
 * 50 WebSocket clients, each its own owner (token), keep two chats in flight all the time (a new one each
 * time one of theirs ends), recording every frame. The reasoner streams slowly and the gateway runs few
 * jobs at once, so at the kill many jobs are mid-answer and many wait in line. The gateway is killed once
 * at least STREAMING jobs have streamed a `result` and not ended, QUEUED jobs have heard `queued` and
 * nothing after it, and DONE jobs have ended. After the restart, fresh clients with the same tokens check:
 * - every accepted job replays (`subscribe {afterSeq: 0}`) exactly what its client saw (seq, event, data,
 *   at), contiguously, and ends with a terminal event: the one the client saw, or `error`/`interrupted`
 *   right after the last journaled event (seq = last journaled + 1) for a job the client did not see end;
 * and, once the gateway is stopped, the store holds every accepted message in its conversation, no job is
 * still `running`, and an answer exactly for the jobs that ended `done`.
 *
 * test/crash-rounds.test.ts does the same over five small rounds (and on PostgreSQL); this is the one
 * big round with queues. A Synology delivery in flight at a kill is resumed: test/synology-resume.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/actors/store/create-database.js';
import { startFakeBackend, type FakeBackend } from '../fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { TestClient, type EventFrame, type Frame } from '../helpers/gateway.js';
import { ReplayChecker, until } from '../helpers/replay-checker.js';
import { scriptModels } from '../helpers/scripted-models.js';

const CLIENTS = 50;
const IN_FLIGHT = 2;
const STREAMING = 12;
const QUEUED = 20;
const DONE = 10;
const TERMINAL = new Set(['done', 'error', 'cancelled']);
const tokenOf = (c: number) => `crash-load-token-${String(c).padStart(2, '0')}`;

/** What a client saw of one of its jobs. */
interface SeenJob {
  owner: number;
  jobId: string;
  conversationId: string;
  text: string;
  events: EventFrame[];
}


describe('crash: kill -9 under load of 50 WebSocket clients, restart (PGlite)', () => {
  let small: FakeBackend;
  let large: FakeBackend;
  let dir: string;
  let gateway: ChildGateway | undefined;
  const sockets: TestClient[] = [];

  beforeAll(async () => {
    small = await startFakeBackend();
    large = await startFakeBackend();
    // Every fourth message is answered by the classifier at once; the others stream 40 pieces, 30 ms apart.
    scriptModels(small, large, {
      classify: (text) => JSON.stringify(text.startsWith('quick') ? { action: 'direct', response: `answer to ${text}` } : { action: 'route' }),
      reason: (text) => ({ content: Array.from({ length: 40 }, (_, i) => `${text.slice(5, 14)}-${i} `), chunkDelayMs: 30 }),
    });
    dir = mkdtempSync(join(tmpdir(), 'sb-crash-load-'));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await gateway?.kill('SIGKILL');
    await small?.close();
    await large?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = () =>
    childConfig(dir, small, large, {
      backend: { timeoutMs: 10_000, concurrency: 16 },
      auth: { tokens: Array.from({ length: CLIENTS }, (_, c) => tokenOf(c)) },
      limits: { maxActiveJobs: 20 },
    });

  it('keeps every accepted message, replays what clients saw, ends unfinished jobs interrupted', async () => {
    gateway = await startChildGateway(dir, config());
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, (_, c) => TestClient.connect(gateway!.wsUrl, { Authorization: `Bearer ${tokenOf(c)}` })),
    );
    sockets.push(...clients);

    // Continuous load: each client keeps IN_FLIGHT chats going, sending the next one when one ends.
    let killed = false;
    const sent = new Array<number>(CLIENTS).fill(0);
    const chat = (c: number) => {
      if (killed) return;
      const k = sent[c]!;
      sent[c] = k + 1;
      const text = `${k % 4 === 0 ? 'quick' : 'long '} c${String(c).padStart(2, '0')} k${String(k).padStart(3, '0')}`;
      clients[c]!.send({ type: 'chat', text, clientMsgId: text });
    };
    clients.forEach((client, c) => {
      client.socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Frame;
        if (frame.type === 'event' && TERMINAL.has(String(frame.event))) chat(c);
      });
      for (let i = 0; i < IN_FLIGHT; i += 1) chat(c);
    });

    const accepted = () =>
      clients.flatMap((client, c) =>
        client.frames
          .filter((f): f is Frame & { jobId: string; conversationId: string; clientMsgId: string } => f.type === 'accepted')
          .map((f) => ({ owner: c, jobId: f.jobId, conversationId: f.conversationId, text: f.clientMsgId, events: client.events(f.jobId) })),
      );
    const count = () => {
      let streaming = 0;
      let queued = 0;
      let done = 0;
      for (const job of accepted()) {
        const last = job.events.at(-1);
        if (last === undefined) continue;
        if (TERMINAL.has(last.event)) done += 1;
        else if (job.events.some((e) => e.event === 'result')) streaming += 1;
        else if (last.event === 'queued') queued += 1;
      }
      return { streaming, queued, done };
    };
    await until(() => {
      const now = count();
      return now.streaming >= STREAMING && now.queued >= QUEUED && now.done >= DONE;
    }, 'jobs streaming, queued and done at once', 30_000);
    killed = true;
    expect(await gateway.kill('SIGKILL')).toBe(null);
    const atKill = count();
    const seen: SeenJob[] = accepted();
    for (const client of clients) client.close();
    expect(new Set(seen.map((job) => job.jobId)).size).toBe(seen.length);

    // Restart on the same folder; fresh clients with the same tokens replay every accepted job.
    gateway = await startChildGateway(dir, config());
    const outcome = { finished: 0, interrupted: 0, undelivered: 0 };
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const checker = new ReplayChecker(gateway!.wsUrl, { token: tokenOf(c), timeoutMs: 20_000 });
        try {
          for (const job of seen.filter((j) => j.owner === c)) {
            const events = await checker.replay(job.jobId, 0);
            const strip = (e: EventFrame) => ({ seq: e.seq, event: e.event, data: e.data, at: e.at });
            expect(events.map((e) => e.seq), `${job.jobId} is contiguous`).toEqual(events.map((_, i) => i + 1));
            expect(events.slice(0, job.events.length).map(strip), `${job.jobId} replays what was seen`).toEqual(job.events.map(strip));
            expect(events.slice(0, -1).every((e) => !TERMINAL.has(e.event)), `${job.jobId} has one terminal event`).toBe(true);
            const last = job.events.at(-1);
            if (last !== undefined && TERMINAL.has(last.event)) {
              expect(events, `${job.jobId} ends where the client saw it end`).toHaveLength(job.events.length);
              outcome.finished += 1;
            } else {
              // After what the client saw: what was journaled but not delivered when the process died (rarely
              // anything), then `error`/`interrupted` at the next seq after the last journaled event.
              const end = events.at(-1);
              expect([end?.event, end?.data['reason']], `${job.jobId} ends interrupted`).toEqual(['error', 'interrupted']);
              outcome.interrupted += 1;
              outcome.undelivered += events.length - 1 - job.events.length;
            }
            job.events = events;
          }
        } finally {
          checker.close();
        }
      }),
    );
    expect(await gateway.kill('SIGTERM')).toBe(0);
    gateway = undefined;
    console.info(
      `crash under load: ${seen.length} jobs accepted; at the kill ${atKill.streaming} streaming, ${atKill.queued} queued, ${atKill.done} ended; ` +
        `after restart ${outcome.finished} finished, ${outcome.interrupted} interrupted (${outcome.undelivered} events journaled but not delivered)`,
    );
    expect(outcome.finished + outcome.interrupted).toBe(seen.length);
    expect(outcome.interrupted).toBeGreaterThanOrEqual(STREAMING + QUEUED);

    // The store: every accepted message in its conversation, an answer exactly for the jobs that ended `done`.
    const database = await createDatabase({ dataDir: join(dir, 'data') });
    try {
      const rows = await database.db.selectFrom('messages').select(['job_id', 'role', 'content', 'conversation_id']).execute();
      for (const job of seen) {
        expect(rows, `the message of ${job.jobId}`).toContainEqual({ job_id: job.jobId, role: 'user', content: job.text, conversation_id: job.conversationId });
        const answered = rows.some((row) => row.job_id === job.jobId && row.role === 'assistant');
        expect(answered, `the answer of ${job.jobId}`).toBe(job.events.at(-1)?.event === 'done');
      }
      const running = await database.db.selectFrom('jobs').select('id').where('status', '=', 'running').execute();
      expect(running).toEqual([]);
    } finally {
      await database.close();
    }
  }, 110_000);
});
