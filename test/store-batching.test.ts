/**
 * Accepted jobs and appended messages are group-committed (one statement per batch), and a job's own
 * writes made while its accept is still committing wait for it. On every supported database; one
 * database per dialect is shared by the file, so tests use ids of their own and drop what they install.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { expect, it } from 'vitest';
import type { DatabaseSchema } from '../src/actors/store/schema.js';
import { createStore, type AcceptJobInput } from '../src/actors/store/store.js';
import { InsertCounter } from './helpers/insert-counter.js';
import { forEachDatabase } from './helpers/databases.js';

const id = (prefix: string): string => `${prefix}-${randomUUID()}`;


/** A clock that moves 1 ms at every reading, so each write of the store gets a time of its own. */
function tickingClock(start: number): () => Date {
  let at = start;
  return () => new Date((at += 1));
}

/**
 * A BEFORE INSERT trigger on `messages`: the content `refuse-me` makes the row fail with SQLSTATE 22023,
 * `slow-me` holds the statement for 300 ms (so a write racing it would run before it commits).
 */
async function installMessageTrigger(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`
    create or replace function sb_test_message_trigger() returns trigger language plpgsql as $$
    begin
      if new.content = 'refuse-me' then
        raise exception 'the test trigger refuses this message' using errcode = '22023';
      end if;
      if new.content = 'slow-me' then
        perform pg_sleep(0.3);
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`drop trigger if exists sb_test_message_trigger on messages`.execute(db);
  await sql`create trigger sb_test_message_trigger before insert on messages
    for each row execute function sb_test_message_trigger()`.execute(db);
}

async function dropMessageTrigger(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`drop trigger if exists sb_test_message_trigger on messages`.execute(db);
  await sql`drop function if exists sb_test_message_trigger()`.execute(db);
}

async function conversationRow(db: Kysely<DatabaseSchema>, conversationId: string) {
  return db.selectFrom('conversations').selectAll().where('id', '=', conversationId).executeTakeFirst();
}

async function messagesOfJob(db: Kysely<DatabaseSchema>, jobId: string) {
  return db.selectFrom('messages').select(['conversation_id', 'role', 'content']).where('job_id', '=', jobId).execute();
}

forEachDatabase((getDatabase) => {
  it('accepts 50 jobs issued in the same tick with one statement, every row right', async () => {
    const counter = new InsertCounter();
    const { db } = getDatabase();
    const start = Date.now();

    // An existing conversation, last touched a day ago, with one message.
    const existing = id('conv-existing');
    const earlier = createStore(db, { now: tickingClock(start - 24 * 60 * 60 * 1000) });
    await earlier.ensureConversation(existing, 'synology', 'user-7');
    await earlier.appendMessage(existing, { role: 'user', content: 'from yesterday' });
    const before = await conversationRow(db, existing);
    expect(before).toBeDefined();

    const store = createStore(db.withPlugin(counter), { now: tickingClock(start) });
    const shared = id('conv-shared');
    const inputs: AcceptJobInput[] = [];
    for (let i = 0; i < 5; i += 1) {
      inputs.push({ jobId: id('job'), conversationId: shared, source: 'ws', mode: 'auto', owner: 'alice', text: `shared ${i}` });
    }
    inputs.push({ jobId: id('job'), conversationId: existing, source: 'synology', externalUser: 'user-7', mode: 'daily', text: 'today' });
    for (let i = 0; i < 44; i += 1) {
      inputs.push({
        jobId: id('job'),
        conversationId: id('conv-single'),
        source: i % 2 === 0 ? 'ws' : 'openai',
        mode: i % 3 === 0 ? 'deep' : 'auto',
        owner: `owner-${i}`,
        text: `single ${i} 안녕`,
        newConversation: true,
      });
    }
    expect(inputs).toHaveLength(50);

    const results = await Promise.allSettled(inputs.map((input) => store.acceptJob(input)));
    expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
    // All 50 in one statement (the default batch holds 200).
    expect(counter.inserts).toBe(1);

    // Every job row, running, as submitted.
    const jobs = await db
      .selectFrom('jobs')
      .selectAll()
      .where('id', 'in', inputs.map((input) => input.jobId))
      .execute();
    expect(jobs).toHaveLength(50);
    const byId = new Map(jobs.map((job) => [job.id, job]));
    for (const input of inputs) {
      expect(byId.get(input.jobId)).toMatchObject({
        conversation_id: input.conversationId,
        source: input.source,
        mode: input.mode,
        owner: input.owner ?? 'anonymous',
        status: 'running',
        finished_at: null,
      });
    }

    // Read from the database, not from the cache the accepts filled.
    store.clearCache();
    const sharedMessages = await store.recentMessages(shared, 10);
    expect(sharedMessages.map((m) => [m.role, m.content, m.jobId])).toEqual(
      inputs.slice(0, 5).map((input) => ['user', input.text, input.jobId]),
    );
    expect((await store.recentMessages(existing, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'from yesterday', null],
      ['user', 'today', inputs[5]?.jobId],
    ]);
    for (const input of inputs.slice(6)) {
      expect((await store.recentMessages(input.conversationId, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
        ['user', input.text, input.jobId],
      ]);
    }
    // A new store (a restarted process) reads the same.
    expect((await createStore(db).recentMessages(shared, 10)).map((m) => m.content)).toEqual(
      ['shared 0', 'shared 1', 'shared 2', 'shared 3', 'shared 4'],
    );

    // The conversation of five accepts: one row, created at the first, touched at the last.
    const sharedRow = await conversationRow(db, shared);
    expect(sharedRow).toMatchObject({ source: 'ws', external_user: null });
    expect(sharedRow?.created_at.getTime()).toBe(sharedMessages[0]?.createdAt.getTime());
    expect(sharedRow?.updated_at.getTime()).toBe(sharedMessages[4]?.createdAt.getTime());
    expect(sharedRow!.updated_at.getTime()).toBeGreaterThan(sharedRow!.created_at.getTime());

    // The existing conversation: touched now, otherwise unchanged.
    const after = await conversationRow(db, existing);
    expect(after).toMatchObject({ source: 'synology', external_user: 'user-7' });
    expect(after?.created_at.getTime()).toBe(before?.created_at.getTime());
    expect(after!.updated_at.getTime()).toBeGreaterThanOrEqual(start);
    expect(after!.updated_at.getTime()).toBeGreaterThan(before!.updated_at.getTime());

    // The single ones: created and touched at their accept.
    const single = inputs[10]!;
    const singleRow = await conversationRow(db, single.conversationId);
    expect(singleRow).toMatchObject({ source: single.source, external_user: null });
    expect(singleRow?.updated_at.getTime()).toBe(singleRow?.created_at.getTime());
  });

  it('appends messages issued in the same tick with one statement, in call order', async () => {
    const counter = new InsertCounter();
    const { db } = getDatabase();
    const store = createStore(db.withPlugin(counter));
    const [first, second] = [id('conv'), id('conv')];
    await store.ensureConversation(first, 'ws');
    await store.ensureConversation(second, 'ws');
    counter.inserts = 0;
    await Promise.all([
      store.appendMessage(first, { role: 'user', content: 'f1' }),
      store.appendMessage(second, { role: 'user', content: 's1' }),
      store.appendMessage(first, { role: 'assistant', content: 'f2', jobId: 'job-f' }),
      store.appendMessage(second, { role: 'assistant', content: 's2' }),
      store.appendMessage(first, { role: 'user', content: 'f3' }),
    ]);
    expect(counter.inserts).toBe(1);
    store.clearCache();
    expect((await store.recentMessages(first, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'f1', null],
      ['assistant', 'f2', 'job-f'],
      ['user', 'f3', null],
    ]);
    expect((await store.recentMessages(second, 10)).map((m) => m.content)).toEqual(['s1', 's2']);
  });

  it("waits for a job's accept before its answer, its draft and its end: nothing is lost racing it", async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const jobId = id('job');
      const conversationId = id('conv');
      // The accept is slow (the trigger holds it 300 ms); everything else is issued before it commits.
      const accepted = store.acceptJob({ jobId, conversationId, source: 'ws', mode: 'auto', text: 'slow-me', newConversation: true });
      const answered = store.appendMessage(conversationId, { role: 'assistant', content: 'the answer', jobId });
      const drafted = store.saveDraft(conversationId, { title: 'meeting' }, new Date(Date.now() + 60_000));
      const finished = store.finishJob(jobId, { status: 'done', branch: 'direct', modelsUsed: ['small'], totalMs: 42.4 });
      const settled = await Promise.allSettled([accepted, answered, drafted, finished]);
      expect(settled.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
      expect(await finished).toBe(true);

      store.clearCache();
      expect((await store.recentMessages(conversationId, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
        ['user', 'slow-me', jobId],
        ['assistant', 'the answer', jobId],
      ]);
      expect(await createStore(db).loadDraft(conversationId)).toEqual({ title: 'meeting' });
      const job = await store.getJob(jobId);
      expect(job).toMatchObject({ status: 'done', branch: 'direct', modelsUsed: ['small'], totalMs: 42, conversationId });
      expect(job?.finishedAt).toBeInstanceOf(Date);

      // clearDraft racing a later accept of the same conversation waits for it too.
      const nextJob = id('job');
      const again = store.acceptJob({ jobId: nextJob, conversationId, source: 'ws', mode: 'auto', text: 'slow-me' });
      const cleared = store.clearDraft(conversationId);
      await Promise.all([again, cleared]);
      expect(await createStore(db).loadDraft(conversationId)).toBeNull();
      expect(await store.getJob(nextJob)).toMatchObject({ status: 'running' });
    } finally {
      await dropMessageTrigger(db);
    }
  });

  it('an accept the database refuses fails alone and leaves nothing; its batch-mates are stored', async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const shared = id('conv-shared');
      const lonely = id('conv-lonely');
      const inputs: AcceptJobInput[] = [
        { jobId: id('job-ok'), conversationId: shared, source: 'ws', mode: 'auto', text: 'first' },
        { jobId: id('job-refused'), conversationId: lonely, source: 'ws', mode: 'auto', text: 'refuse-me', newConversation: true },
        { jobId: id('job-ok'), conversationId: shared, source: 'ws', mode: 'auto', text: 'second' },
        { jobId: id('job-refused'), conversationId: shared, source: 'ws', mode: 'auto', text: 'refuse-me' },
        { jobId: id('job-ok'), conversationId: id('conv-other'), source: 'openai', mode: 'deep', text: 'third', newConversation: true },
        { jobId: id('job-ok'), conversationId: shared, source: 'ws', mode: 'auto', text: 'fourth' },
      ];
      const results = await Promise.allSettled(inputs.map((input) => store.acceptJob(input)));
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      for (const index of [1, 3]) {
        const result = results[index];
        expect(result?.status === 'rejected' ? result.reason : undefined).toMatchObject({
          code: '22023',
          message: expect.stringContaining('the test trigger refuses this message'),
        });
      }

      for (const input of inputs.filter((_, index) => index !== 1 && index !== 3)) {
        expect(await store.getJob(input.jobId)).toMatchObject({ status: 'running', conversationId: input.conversationId, mode: input.mode });
        expect(await messagesOfJob(db, input.jobId)).toEqual([{ conversation_id: input.conversationId, role: 'user', content: input.text }]);
      }
      // The refused ones: no job, no message, and a conversation of their own is not created either.
      for (const index of [1, 3]) {
        const refused = inputs[index]!;
        expect(await store.getJob(refused.jobId)).toBeNull();
        expect(await messagesOfJob(db, refused.jobId)).toEqual([]);
      }
      expect(await conversationRow(db, lonely)).toBeUndefined();

      store.clearCache();
      expect((await store.recentMessages(shared, 10)).map((m) => m.content)).toEqual(['first', 'second', 'fourth']);

      // A write of a refused job, made while its accept was committing, fails instead of landing alone.
      const refusedJob = id('job-refused');
      const refusedConversation = id('conv-refused');
      const accept = store.acceptJob({ jobId: refusedJob, conversationId: refusedConversation, source: 'ws', mode: 'auto', text: 'refuse-me', newConversation: true });
      const answer = store.appendMessage(refusedConversation, { role: 'assistant', content: 'orphan', jobId: refusedJob });
      const end = store.finishJob(refusedJob, { status: 'done' });
      const outcomes = await Promise.allSettled([accept, answer, end]);
      expect(outcomes.slice(0, 2).map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
      // The end of a job that was never stored either fails or updates nothing; it never reports success.
      const ended = outcomes[2];
      expect(ended?.status === 'fulfilled' ? ended.value : 'rejected').not.toBe(true);
      expect(await messagesOfJob(db, refusedJob)).toEqual([]);
      expect(await store.getJob(refusedJob)).toBeNull();
    } finally {
      await dropMessageTrigger(db);
    }
  });

  it("a later job's refused accept does not fail the writes of the conversation's earlier, stored job", async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const conversationId = id('conv-ab');
      const jobA = id('job-a');
      const jobB = id('job-b');
      await store.acceptJob({ jobId: jobA, conversationId, source: 'ws', mode: 'auto', text: 'question A', newConversation: true });
      // B is refused while A is still writing its answer, draft and end.
      const acceptB = store.acceptJob({ jobId: jobB, conversationId, source: 'ws', mode: 'auto', text: 'refuse-me' });
      const answerA = store.appendMessage(conversationId, { role: 'assistant', content: 'answer A', jobId: jobA });
      const draftA = store.saveDraft(conversationId, { title: 'from A' }, new Date(Date.now() + 60_000));
      const endA = store.finishJob(jobA, { status: 'done', branch: 'direct' });
      const [b, ...a] = await Promise.allSettled([acceptB, answerA, draftA, endA]);
      expect(b?.status).toBe('rejected');
      expect(a.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      expect(a[2]?.status === 'fulfilled' ? a[2].value : undefined).toBe(true);
      store.clearCache();
      expect((await store.recentMessages(conversationId, 10)).map((m) => m.content)).toEqual(['question A', 'answer A']);
      expect(await store.loadDraft(conversationId)).toEqual({ title: 'from A' });
      expect(await store.getJob(jobA)).toMatchObject({ status: 'done', branch: 'direct' });
    } finally {
      await dropMessageTrigger(db);
    }
  });
});
