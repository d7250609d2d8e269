/**
 * Everything the store writes on the hot path goes through one ordered writer: one statement per batch,
 * a job's writes in order, and a row the database refuses fails only its own job. On every supported
 * database; one database per dialect is shared by the file, so tests use ids of their own and drop what
 * they install.
 */
import { sql, type Kysely } from 'kysely';
import { expect, it } from 'vitest';
import type { DatabaseSchema } from '../src/actors/store/schema.js';
import { StoreRejectedError } from '../src/actors/store/store-errors.js';
import { createStore, type AcceptJobInput } from '../src/actors/store/store.js';
import { forEachDatabase } from './helpers/databases.js';
import { StatementCounter } from './helpers/statement-counter.js';
import { accept, answer, event, id } from './helpers/store-writes.js';

/** A clock that moves 1 ms at every reading, so each write of the store gets a time of its own. */
function tickingClock(start: number): () => Date {
  let at = start;
  return () => new Date((at += 1));
}

/**
 * A BEFORE INSERT trigger on `messages`: the content `refuse-me` makes the row fail with SQLSTATE 22023
 * (its message quotes the row, as triggers do); `slow-me` holds the statement for 300 ms.
 */
async function installMessageTrigger(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`
    create or replace function sb_test_message_trigger() returns trigger language plpgsql as $$
    begin
      if new.content = 'refuse-me' then
        raise exception 'the test trigger refuses %', new.content using errcode = '22023', detail = new.content;
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
    const counter = new StatementCounter();
    const { db } = getDatabase();
    const start = Date.now();

    // An existing conversation, last touched a day ago, with one message.
    const earlier = createStore(db, { now: tickingClock(start - 24 * 60 * 60 * 1000) });
    const yesterday = await accept(earlier, { source: 'synology', externalUser: 'user-7', owner: 'user-7', text: 'from yesterday' });
    const existing = yesterday.conversationId;
    const before = await conversationRow(db, existing);
    expect(before).toBeDefined();

    const store = createStore(db.withPlugin(counter), { now: tickingClock(start) });
    const shared = id('conv-shared');
    const inputs: AcceptJobInput[] = [];
    for (let i = 0; i < 5; i += 1) {
      inputs.push({ jobId: id('job'), conversationId: shared, source: 'ws', mode: 'auto', owner: 'alice', text: `shared ${i}` });
    }
    inputs.push({ jobId: id('job'), conversationId: existing, source: 'synology', externalUser: 'user-7', mode: 'daily', owner: 'user-7', text: 'today' });
    for (let i = 0; i < 44; i += 1) {
      inputs.push({
        jobId: id('job'),
        conversationId: id('conv-single'),
        source: i % 2 === 0 ? 'ws' : 'openai',
        mode: i % 3 === 0 ? 'deep' : 'auto',
        owner: `owner-${i}`,
        text: `single ${i} 안녕`,
        clientMsgId: `client-${i}`,
        newConversation: true,
      });
    }
    expect(inputs).toHaveLength(50);

    const results = await Promise.allSettled(inputs.map((input) => store.acceptJob(input)));
    expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
    // All 50 in one statement (the default batch holds 200).
    expect(counter.statements).toBe(1);

    // Every job row, running, as submitted.
    const jobs = await db.selectFrom('jobs').selectAll().where('id', 'in', inputs.map((input) => input.jobId)).execute();
    expect(jobs).toHaveLength(50);
    const byId = new Map(jobs.map((job) => [job.id, job]));
    for (const input of inputs) {
      expect(byId.get(input.jobId)).toMatchObject({
        conversation_id: input.conversationId,
        source: input.source,
        mode: input.mode,
        owner: input.owner,
        client_msg_id: input.clientMsgId ?? null,
        status: 'running',
        finished_at: null,
      });
    }

    // Read from the database, not from the cache the accepts filled.
    store.clearCache();
    const sharedMessages = await store.recentMessages(shared, 10);
    expect(sharedMessages.map((m) => [m.role, m.content, m.jobId])).toEqual(inputs.slice(0, 5).map((input) => ['user', input.text, input.jobId]));
    expect((await store.recentMessages(existing, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'from yesterday', yesterday.jobId],
      ['user', 'today', inputs[5]?.jobId],
    ]);
    for (const input of inputs.slice(6)) {
      expect((await store.recentMessages(input.conversationId, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([['user', input.text, input.jobId]]);
      expect(await store.conversationOwner(input.conversationId)).toBe(input.owner);
    }
    // A new store (a restarted process) reads the same.
    expect((await createStore(db).recentMessages(shared, 10)).map((m) => m.content)).toEqual(['shared 0', 'shared 1', 'shared 2', 'shared 3', 'shared 4']);

    // The conversation of five accepts: one row, created at the first, touched at the last.
    const sharedRow = await conversationRow(db, shared);
    expect(sharedRow).toMatchObject({ source: 'ws', external_user: null, owner: 'alice' });
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

  it('writes accepts, events, answers with their ends and drafts of many jobs in one statement, each in order', async () => {
    const counter = new StatementCounter();
    const { db } = getDatabase();
    const store = createStore(db.withPlugin(counter));
    const first = await accept(store, { text: 'f1' });
    const second = await accept(store, { text: 's1' });
    counter.statements = 0;
    const next = { jobId: id('job'), conversationId: first.conversationId, source: 'ws', mode: 'auto', owner: 'anonymous', text: 'f3' } as const;
    await Promise.all([
      store.journal.append(first.jobId, event(1, 'ack', {})),
      answer(store, first, 'f2', 2),
      store.journal.append(second.jobId, event(1, 'ack', {})),
      store.saveDraft(second.jobId, second.conversationId, { title: 'meeting' }, new Date(Date.now() + 60_000)),
      answer(store, second, 's2', 2),
      store.acceptJob(next),
    ]);
    expect(counter.statements).toBe(1);
    store.clearCache();
    expect((await store.recentMessages(first.conversationId, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'f1', first.jobId],
      ['assistant', 'f2', first.jobId],
      ['user', 'f3', next.jobId],
    ]);
    expect((await store.recentMessages(second.conversationId, 10)).map((m) => m.content)).toEqual(['s1', 's2']);
    expect(await createStore(db).loadDraft(second.conversationId)).toEqual({ title: 'meeting' });
    expect(await store.getJob(first.jobId)).toMatchObject({ status: 'done' });
    expect(await store.getJob(next.jobId)).toMatchObject({ status: 'running' });
    expect((await store.journal.eventsAfter(second.jobId, 0)).map((e) => e.event)).toEqual(['ack', 'done']);
  });

  it("a job's writes made while its accept is still committing land after it: nothing is lost racing it", async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const job = { jobId: id('job'), conversationId: id('conv'), source: 'ws', mode: 'auto', owner: 'anonymous', text: 'slow-me', newConversation: true } as const;
      // The accept is slow (the trigger holds it 300 ms); everything else is issued before it commits.
      const accepted = store.acceptJob(job);
      const acked = store.journal.append(job.jobId, event(1, 'ack', {}));
      const drafted = store.saveDraft(job.jobId, job.conversationId, { title: 'meeting' }, new Date(Date.now() + 60_000));
      const answered = answer(store, job, 'the answer', 2);
      const settled = await Promise.allSettled([accepted, acked, drafted, answered]);
      expect(settled.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);

      store.clearCache();
      expect((await store.recentMessages(job.conversationId, 10)).map((m) => [m.role, m.content, m.jobId])).toEqual([
        ['user', 'slow-me', job.jobId],
        ['assistant', 'the answer', job.jobId],
      ]);
      expect(await createStore(db).loadDraft(job.conversationId)).toEqual({ title: 'meeting' });
      const stored = await store.getJob(job.jobId);
      expect(stored).toMatchObject({ status: 'done', branch: 'direct', modelsUsed: ['small'], totalMs: 12, conversationId: job.conversationId });
      expect(stored?.finishedAt).toBeInstanceOf(Date);
    } finally {
      await dropMessageTrigger(db);
    }
  });

  it('an accept the database refuses fails alone, with no row data in its error; its batch-mates are stored', async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const shared = id('conv-shared');
      const lonely = id('conv-lonely');
      const base = { source: 'ws', mode: 'auto', owner: 'anonymous' } as const;
      const inputs: AcceptJobInput[] = [
        { ...base, jobId: id('job-ok'), conversationId: shared, text: 'first', newConversation: true },
        { ...base, jobId: id('job-refused'), conversationId: lonely, text: 'refuse-me', newConversation: true },
        { ...base, jobId: id('job-ok'), conversationId: shared, text: 'second' },
        { ...base, jobId: id('job-refused'), conversationId: shared, text: 'refuse-me' },
        { ...base, jobId: id('job-ok'), conversationId: id('conv-other'), source: 'openai', mode: 'deep', text: 'third', newConversation: true },
        { ...base, jobId: id('job-ok'), conversationId: shared, text: 'fourth' },
      ];
      const results = await Promise.allSettled(inputs.map((input) => store.acceptJob(input)));
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      for (const index of [1, 3]) {
        const result = results[index];
        const error = result?.status === 'rejected' ? (result.reason as unknown) : undefined;
        expect(error).toBeInstanceOf(StoreRejectedError);
        expect(error).toMatchObject({ sqlState: '22023', reason: 'internal' });
        // The database's message quotes the row; none of it leaves the store.
        expect(JSON.stringify(error) + String(error)).not.toContain('refuse-me');
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

      // The writes of a refused job, made while its accept was committing, fail instead of landing alone.
      const refused = { ...base, jobId: id('job-refused'), conversationId: id('conv-refused'), text: 'refuse-me', newConversation: true };
      const outcomes = await Promise.allSettled([store.acceptJob(refused), store.journal.append(refused.jobId, event(1, 'ack', {})), answer(store, refused, 'orphan', 2)]);
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(await messagesOfJob(db, refused.jobId)).toEqual([]);
      expect(await store.getJob(refused.jobId)).toBeNull();
      expect(await store.journal.eventsAfter(refused.jobId, 0)).toEqual([]);
    } finally {
      await dropMessageTrigger(db);
    }
  });

  it("a later job's refused accept does not fail the writes of the conversation's earlier, stored job", async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const jobA = await accept(store, { text: 'question A' });
      const jobB = { jobId: id('job-b'), conversationId: jobA.conversationId, source: 'ws', mode: 'auto', owner: 'anonymous', text: 'refuse-me' } as const;
      // B is refused while A is still writing its draft and its end.
      const acceptB = store.acceptJob(jobB);
      const draftA = store.saveDraft(jobA.jobId, jobA.conversationId, { title: 'from A' }, new Date(Date.now() + 60_000));
      const answerA = answer(store, jobA, 'answer A');
      const [b, ...a] = await Promise.allSettled([acceptB, draftA, answerA]);
      expect(b?.status).toBe('rejected');
      expect(a.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled']);
      store.clearCache();
      expect((await store.recentMessages(jobA.conversationId, 10)).map((m) => m.content)).toEqual(['question A', 'answer A']);
      expect(await store.loadDraft(jobA.conversationId)).toEqual({ title: 'from A' });
      expect(await store.getJob(jobA.jobId)).toMatchObject({ status: 'done', branch: 'direct' });
    } finally {
      await dropMessageTrigger(db);
    }
  });

  it('a history read waits for the answer of the conversation that is on its way', async () => {
    const { db } = getDatabase();
    await installMessageTrigger(db);
    try {
      const store = createStore(db);
      const first = await accept(store, { text: 'question' });
      // The answer's write is slow; the next job of the conversation reads its history meanwhile.
      const answered = answer(store, first, 'slow-me');
      const history = await store.recentMessages(first.conversationId, 10);
      await answered;
      expect(history.map((m) => m.content)).toEqual(['question', 'slow-me']);
    } finally {
      await dropMessageTrigger(db);
    }
  });
});
