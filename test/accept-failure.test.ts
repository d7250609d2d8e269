/**
 * A job starts before its accept write commits; when that write fails the client is told so with an
 * `error` frame and hears nothing else of the job, which is cancelled and unknown from then on. The
 * gateway is the real one (runtime, store, WebSocket) over fake model servers; the store is made to
 * refuse a message by a trigger installed in the gateway's database before it opens it (PGlite) or
 * through a second connection (PostgreSQL, when TEST_DATABASE_URL is set).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, runMigrations, type Database } from '../src/actors/store/create-database.js';
import type { DatabaseSchema } from '../src/actors/store/schema.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { openTestDatabase, testDialects, type DialectName, type TestDatabase } from './helpers/databases.js';
import { startTestGateway, TestClient, type EventFrame, type Frame, type TestGateway } from './helpers/gateway.js';
import { classifiedText, scriptModels } from './helpers/scripted-models.js';

const json = (value: unknown) => JSON.stringify(value);

/** `refuse-me` fails at once (SQLSTATE 22023); `refuse-me-slowly` after 600 ms, when its job has long answered. */
async function installRefusingTrigger(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`
    create or replace function sb_test_refuse() returns trigger language plpgsql as $$
    begin
      if new.content = 'refuse-me-slowly' then
        perform pg_sleep(0.6);
        raise exception 'the test trigger refuses this message, slowly' using errcode = '22023';
      end if;
      if new.content = 'refuse-me' then
        raise exception 'the test trigger refuses this message' using errcode = '22023';
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`create trigger sb_test_refuse before insert on messages
    for each row execute function sb_test_refuse()`.execute(db);
}

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
async function eventually(check: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Checks the contract on a job's events: seq 1..n, one terminal event, last. */
function checkContract(events: EventFrame[], terminal: string): void {
  expect(events.length).toBeGreaterThan(1);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect(events.filter((e) => ['done', 'error', 'cancelled'].includes(e.event)).map((e) => e.event)).toEqual([terminal]);
  expect(events.at(-1)?.event).toBe(terminal);
}

/**
 * The gateway's database, set up with the trigger before the gateway starts. `inspect` opens it for
 * reading; on PGlite only after the gateway has closed it (one process per data directory).
 */
interface Setup {
  gatewayOptions: { dataDir?: string; config?: Record<string, unknown> };
  /** Runs `read` against the gateway's database. */
  inspect<T>(read: (db: Kysely<DatabaseSchema>) => Promise<T>): Promise<T>;
  dispose(): Promise<void>;
}

async function prepare(dialect: DialectName): Promise<Setup> {
  if (dialect === 'pglite') {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-accept-failure-'));
    const seed = await createDatabase({ dataDir });
    try {
      await runMigrations(seed.db);
      await installRefusingTrigger(seed.db);
    } finally {
      await seed.close();
    }
    return {
      gatewayOptions: { dataDir },
      async inspect(read) {
        const opened: Database = await createDatabase({ dataDir });
        try {
          return await read(opened.db);
        } finally {
          await opened.close();
        }
      },
      async dispose() {
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  const adminUrl = process.env['TEST_DATABASE_URL'];
  if (!adminUrl) throw new Error('CI=true but TEST_DATABASE_URL is not set: source .ci/postgres.sh before the tests');
  const database: TestDatabase = await openTestDatabase('postgres');
  await runMigrations(database.db);
  await installRefusingTrigger(database.db);
  const url = new URL(adminUrl);
  url.pathname = `/${database.location}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-accept-failure-'));
  return {
    gatewayOptions: { config: { database: { url: url.toString(), dataDir } } },
    inspect: (read) => read(database.db),
    async dispose() {
      await database.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

for (const dialect of testDialects()) {
  describe(`a chat whose accept write fails (${dialect})`, () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let setup: Setup | undefined;
    let gateway: TestGateway | undefined;
    let client: TestClient;
    let gatewayClosed = false;
    /** Every job handed to the supervisor, seen through the inspector (the client never learns a refused job's id). */
    const submitted: Array<{ jobId: string; conversationId: string; text: string }> = [];
    /** The jobs the tests expect to have been stored, and the ones that must have left no trace. */
    const storedJobs: string[] = [];
    const refusedJobs: string[] = [];

    const submittedJob = (text: string) => {
      const found = submitted.filter((spec) => spec.text === text);
      expect(found).toHaveLength(1);
      return found[0]!;
    };

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, {
        classify: (text) => {
          // Slow enough that a job that was not cancelled would still be running for seconds.
          if (text === 'refuse-me') return { content: json({ action: 'direct', response: 'never seen' }), headersDelayMs: 4_000 };
          if (text === 'refuse-me-slowly') return json({ action: 'direct', response: 'answered before the refusal' });
          return json({ action: 'direct', response: `Answer to: ${text}` });
        },
      });
      setup = await prepare(dialect);
      gateway = await startTestGateway({
        classifier: small,
        reasoner: large,
        ...setup.gatewayOptions,
        deps: {
          inspect: (event: InspectionEvent) => {
            if (event.type !== '@xstate.event' || event.event.type !== 'submit') return;
            const spec = (event.event as { spec?: { jobId: string; conversationId: string; text: string } }).spec;
            if (spec !== undefined) submitted.push({ jobId: spec.jobId, conversationId: spec.conversationId, text: spec.text });
          },
        },
      });
      client = await TestClient.connect(gateway.wsUrl);
    }, 60_000);

    afterAll(async () => {
      client?.close();
      if (!gatewayClosed) await gateway?.close();
      await setup?.dispose();
      await small?.close();
      await large?.close();
    });

    it('answers with an error frame, never `accepted` or an event; the job is cancelled and unknown', async () => {
      const from = client.frames.length;
      client.send({ type: 'chat', text: 'refuse-me', clientMsgId: 'refused-1' });
      const error = await client.waitFor((f) => f.type === 'error', 10_000, from);
      // The WebSocket server maps an internal failure of a frame to bad_request.
      expect(error).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('internal error') });
      const refused = submittedJob('refuse-me');
      refusedJobs.push(refused.jobId);

      // It started (the supervisor got it) and was cancelled: nothing stays active, although its
      // classifier would take 4 s to answer.
      await eventually(() => {
        const { jobs } = gateway!.runtime.status();
        return jobs.active === 0 && jobs.pending === 0;
      }, 'the refused job is cancelled');
      const classifierCalls = small.requests.filter((request) => request.body !== null && classifiedText(request.body) === 'refuse-me');
      expect(classifierCalls.length).toBeLessThanOrEqual(1);
      if (classifierCalls[0] !== undefined) {
        const call = classifierCalls[0];
        await eventually(() => call.clientAborted, 'the classifier call of the refused job is aborted');
      }

      // Unknown from now on: to the runtime and to a client asking for it.
      expect(await gateway!.runtime.subscribe(refused.jobId, 'anonymous', 0, () => undefined)).toBeNull();
      expect(await gateway!.runtime.cancel(refused.jobId, 'anonymous')).toBe(false);
      const beforeSubscribe = client.frames.length;
      client.send({ type: 'subscribe', jobId: refused.jobId });
      expect(await client.waitFor((f) => f.type === 'error', 5_000, beforeSubscribe)).toMatchObject({ code: 'unknown_job' });

      // The connection keeps working: a normal chat gets `accepted` and its whole stream.
      const { jobId } = await client.chat('hello after the refusal');
      storedJobs.push(jobId);
      const events = await client.finished(jobId);
      checkContract(events, 'done');
      expect(client.answer(jobId)).toBe('Answer to: hello after the refusal');

      const frames = client.frames.slice(from);
      expect(frames.filter((f) => f.type === 'accepted').map((f) => f['clientMsgId'])).not.toContain('refused-1');
      expect(frames.filter((f) => f.type === 'accepted')).toHaveLength(1);
      expect(frames.filter((f) => f.type === 'event' && f['jobId'] !== jobId)).toEqual([]);
      expect(frames.filter((f) => f.type === 'error').map((f) => f['code'])).toEqual(['bad_request', 'unknown_job']);
    });

    it('delivers nothing of a job that had already answered when its accept failed', async () => {
      const from = client.frames.length;
      client.send({ type: 'chat', text: 'refuse-me-slowly', clientMsgId: 'refused-2' });
      const error = await client.waitFor((f) => f.type === 'error', 10_000, from);
      expect(error).toMatchObject({ code: 'bad_request' });
      const refused = submittedJob('refuse-me-slowly');
      refusedJobs.push(refused.jobId);
      // Its classifier answered at once: the job produced its answer while the write was held (its
      // recording of the answer then waits for the accept, and fails with it).
      expect(small.requests.some((request) => request.body !== null && classifiedText(request.body) === 'refuse-me-slowly')).toBe(true);

      expect(await gateway!.runtime.subscribe(refused.jobId, 'anonymous', 0, () => undefined)).toBeNull();
      const { jobId } = await client.chat('and again');
      storedJobs.push(jobId);
      checkContract(await client.finished(jobId), 'done');
      expect(client.answer(jobId)).toBe('Answer to: and again');

      const frames = client.frames.slice(from);
      expect(frames.filter((f: Frame) => f.type === 'event' && f['jobId'] !== jobId)).toEqual([]);
      expect(frames.filter((f) => f.type === 'accepted').map((f) => f['jobId'])).toEqual([jobId]);
    });

    it('refuses a message with a NUL character with bad_request, and the connection keeps working', async () => {
      const from = client.frames.length;
      const before = submitted.length;
      client.send({ type: 'chat', text: 'before\u0000after', clientMsgId: 'nul-1' });
      const error = await client.waitFor((f) => f.type === 'error', 5_000, from);
      expect(error).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('NUL') });
      // Refused before any job existed.
      expect(submitted.length).toBe(before);

      client.send({ type: 'ping' });
      await client.waitFor((f) => f.type === 'pong', 5_000, from);
      const { jobId } = await client.chat('after the NUL');
      storedJobs.push(jobId);
      checkContract(await client.finished(jobId), 'done');
      expect(client.frames.slice(from).filter((f) => f.type === 'accepted').map((f) => f['jobId'])).toEqual([jobId]);
    });

    it('leaves no row of a refused job; the others are stored', async () => {
      expect(refusedJobs).toHaveLength(2);
      expect(storedJobs).toHaveLength(3);
      // Everything written, database closed (PGlite is opened by one process at a time).
      client.close();
      await gateway!.close();
      gatewayClosed = true;

      const rows = await setup!.inspect(async (db) => ({
        jobs: await db.selectFrom('jobs').select(['id', 'status']).where('id', 'in', [...refusedJobs, ...storedJobs]).execute(),
        messages: await db
          .selectFrom('messages')
          .select(['job_id', 'role', 'content'])
          .where((eb) => eb.or([eb('job_id', 'in', [...refusedJobs, ...storedJobs]), eb('content', 'like', 'refuse-me%')]))
          .orderBy('id')
          .execute(),
        conversations: await db
          .selectFrom('conversations')
          .select('id')
          .where('id', 'in', submitted.filter((spec) => refusedJobs.includes(spec.jobId)).map((spec) => spec.conversationId))
          .execute(),
      }));
      expect(rows.jobs.map((job) => [job.id, job.status]).sort()).toEqual(storedJobs.map((id) => [id, 'done']).sort());
      expect(rows.messages.filter((m) => m.job_id !== null && refusedJobs.includes(m.job_id))).toEqual([]);
      expect(rows.messages.filter((m) => m.content.startsWith('refuse-me'))).toEqual([]);
      expect(rows.messages.map((m) => [m.job_id, m.role])).toEqual(storedJobs.flatMap((id) => [[id, 'user'], [id, 'assistant']]));
      expect(rows.conversations).toEqual([]);
      // Journal rows a refused job wrote before its accept failed may remain (JobJournal.discard drops only
      // buffered events; the rest age out with retention): subscribe never serves them, as checked above.
    });
  });
}
