/**
 * Write-ahead job events under crashes (issue 8, must show): five rounds of streaming load, each ended
 * by `kill -9` of the gateway, on PGlite and on PostgreSQL. After every restart:
 * - every event any client saw replays identically (same seq, event, data, time);
 * - `subscribe {afterSeq: last seen}` of a job the client did not see end reaches `error`/`interrupted`
 *   at the next seq after the last journaled event (`last + 1`, unless events were committed and the
 *   process died before they reached the socket: then those come first) — a resuming client always
 *   reaches a terminal event;
 * - every job a client saw end `done` replays `done`;
 * and at the end every accepted message is in its conversation's history.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/actors/store/create-database.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { openTestDatabase, testDialects, type TestDatabase } from './helpers/databases.js';
import { TestClient, type EventFrame, type Frame } from './helpers/gateway.js';
import { ReplayChecker, until } from './helpers/replay-checker.js';
import { scriptModels } from './helpers/scripted-models.js';

const ROUNDS = 5;
const CLIENTS = 4;
const CHATS_PER_CLIENT = 3;
const TERMINAL = new Set(['done', 'error', 'cancelled']);

/** What one client saw of one job. */
interface SeenJob {
  jobId: string;
  conversationId: string;
  text: string;
  events: EventFrame[];
}


for (const dialect of testDialects()) {
  describe(`kill -9 under streaming load, ${ROUNDS} rounds (${dialect})`, () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let dir: string;
    let postgres: TestDatabase | undefined;
    let gateway: ChildGateway | undefined;

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      // Short questions are answered at once; the others stream for about a second.
      scriptModels(small, large, {
        classify: (text) => JSON.stringify(text.startsWith('quick') ? { action: 'direct', response: `answer to ${text}` } : { action: 'route' }),
        reason: (text) => ({ content: Array.from({ length: 80 }, (_, i) => `${text.slice(0, 8)}-${i} `), chunkDelayMs: 12 }),
      });
      dir = mkdtempSync(join(tmpdir(), 'sb-crash-'));
      if (dialect === 'postgres') postgres = await openTestDatabase('postgres');
    });

    afterAll(async () => {
      await gateway?.kill('SIGKILL');
      await small?.close();
      await large?.close();
      await postgres?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const config = () => {
      const base = childConfig(dir, small, large, { backend: { timeoutMs: 5_000, concurrency: 4 } });
      if (postgres === undefined) return base;
      const url = new URL(process.env['TEST_DATABASE_URL'] ?? '');
      url.pathname = `/${postgres.location}`;
      return { ...base, database: { url: url.toString(), dataDir: join(dir, 'unused') } };
    };

    it('replays what clients saw, resumes to a terminal event, and keeps every accepted message', async () => {
      const seen = new Map<string, SeenJob>();
      /** Per interrupted job: events journaled but not delivered before the kill. */
      const undelivered: number[] = [];
      /** Conversations of earlier rounds, continued in later ones. */
      const conversations: string[] = [];

      for (let round = 1; round <= ROUNDS; round += 1) {
        gateway = await startChildGateway(dir, config());
        const checker = new ReplayChecker(gateway.wsUrl);

        // What the previous round saw, checked against this restarted gateway.
        for (const job of seen.values()) {
          const events = await checker.replay(job.jobId, 0);
          expect(events.map((e) => e.seq), `${job.jobId} is contiguous`).toEqual(events.map((_, i) => i + 1));
          const strip = (e: EventFrame) => ({ seq: e.seq, event: e.event, data: e.data, at: e.at });
          expect(events.slice(0, job.events.length).map(strip), `${job.jobId} replays what was seen`).toEqual(job.events.map(strip));
          const last = job.events.at(-1);
          if (last !== undefined && TERMINAL.has(last.event)) {
            expect(events, `${job.jobId} ends where the client saw it end`).toHaveLength(job.events.length);
          } else {
            // Resuming after the last event seen: what was journaled but not yet delivered when the process
            // died (usually nothing), then `error`/`interrupted` at the next seq after the last journaled one.
            const after = last?.seq ?? 0;
            const resumed = await checker.replay(job.jobId, after);
            expect(resumed.map((e) => e.seq), `${job.jobId} resumes contiguously`).toEqual(resumed.map((_, i) => after + i + 1));
            expect(resumed.slice(0, -1).every((e) => !TERMINAL.has(e.event))).toBe(true);
            expect([resumed.at(-1)?.event, resumed.at(-1)?.data['reason']], `${job.jobId} resumes to interrupted`).toEqual(['error', 'interrupted']);
            undelivered.push(resumed.length - 1);
          }
          // From now on the job is what the replay says (it has ended).
          job.events = events;
        }

        // Load: every client sends its chats at once, continuing earlier conversations where there are some.
        const clients = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.connect(gateway!.wsUrl)));
        const roundJobs: SeenJob[] = [];
        clients.forEach((client, c) => {
          for (let k = 0; k < CHATS_PER_CLIENT; k += 1) {
            const text = `${k === 0 ? 'quick' : 'long'} r${round} c${c} k${k}`;
            const conversationId = k === 0 ? conversations[(round + c) % Math.max(1, conversations.length)] : undefined;
            client.send({ type: 'chat', text, clientMsgId: text, ...(conversationId === undefined ? {} : { conversationId }) });
          }
        });
        const accepted = (client: TestClient) => client.frames.filter((f): f is Frame & { jobId: string; conversationId: string; clientMsgId: string } => f.type === 'accepted');
        await until(() => clients.every((client) => accepted(client).length === CHATS_PER_CLIENT), 'every chat accepted');
        for (const client of clients) {
          for (const frame of accepted(client)) {
            const job: SeenJob = { jobId: frame.jobId, conversationId: frame.conversationId, text: frame.clientMsgId, events: [] };
            roundJobs.push(job);
            seen.set(job.jobId, job);
            if (!conversations.includes(job.conversationId)) conversations.push(job.conversationId);
          }
        }
        const eventsOf = (jobId: string) => clients.flatMap((client) => client.events(jobId));
        const ended = () => roundJobs.filter((job) => eventsOf(job.jobId).some((e) => TERMINAL.has(e.event))).length;
        const streaming = () => roundJobs.filter((job) => eventsOf(job.jobId).some((e) => e.event === 'result') && !eventsOf(job.jobId).some((e) => TERMINAL.has(e.event))).length;
        // Kill while some jobs have ended and others are in the middle of their answers.
        await until(() => ended() >= CLIENTS && streaming() >= 2, 'jobs done and jobs streaming');
        expect(await gateway.kill('SIGKILL')).toBe(null);
        for (const job of roundJobs) job.events = eventsOf(job.jobId);
        for (const client of [...clients, checker]) client.close();
        expect(roundJobs.some((job) => job.events.at(-1)?.event === 'done')).toBe(true);
        expect(roundJobs.some((job) => job.events.length > 0 && !TERMINAL.has(job.events.at(-1)?.event ?? ''))).toBe(true);
      }

      // Once more after the last kill, then every accepted message must be in its history.
      gateway = await startChildGateway(dir, config());
      const checker = new ReplayChecker(gateway.wsUrl);
      for (const job of seen.values()) {
        const events = await checker.replay(job.jobId, 0);
        const strip = (e: EventFrame) => ({ seq: e.seq, event: e.event, data: e.data, at: e.at });
        expect(events.slice(0, job.events.length).map(strip)).toEqual(job.events.map(strip));
        expect(TERMINAL.has(events.at(-1)?.event ?? '')).toBe(true);
        if (job.events.some((e) => e.event === 'done')) expect(events.at(-1)?.event).toBe('done');
      }
      checker.close();
      expect(await gateway.kill('SIGTERM')).toBe(0);
      // Write-ahead: anything undelivered is at most what the last batches committed as the process died.
      expect(undelivered.length).toBeGreaterThanOrEqual(ROUNDS * 2);
      console.info(`${dialect}: ${undelivered.length} interrupted jobs; journaled but undelivered events per job: ${undelivered.join(' ')}`);
      gateway = undefined;

      const database = postgres ?? (await createDatabase({ dataDir: join(dir, 'data') }));
      try {
        const rows = await database.db.selectFrom('messages').select(['job_id', 'role', 'content', 'conversation_id']).execute();
        for (const job of seen.values()) {
          expect(rows, `the message of ${job.jobId}`).toContainEqual({ job_id: job.jobId, role: 'user', content: job.text, conversation_id: job.conversationId });
          // An answer is in the history exactly when the client saw the job end `done`.
          const answered = rows.some((row) => row.job_id === job.jobId && row.role === 'assistant');
          expect(answered, `the answer of ${job.jobId}`).toBe(job.events.at(-1)?.event === 'done');
        }
        const running = await database.db.selectFrom('jobs').select('id').where('status', '=', 'running').execute();
        expect(running).toEqual([]);
      } finally {
        if (postgres === undefined) await database.close();
      }
    }, 240_000);
  });
}
