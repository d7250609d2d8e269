/**
 * The store on every supported database (PGlite always, PostgreSQL when TEST_DATABASE_URL is set).
 * One database per dialect is shared by the whole file, so tests use ids of their own.
 */
import { randomUUID } from 'node:crypto';
import { NO_MIGRATIONS } from 'kysely';
import { expect, it } from 'vitest';
import { createMigrator, runMigrations } from '../src/actors/store/create-database.js';
import { createJobJournal, type JournalEvent } from '../src/actors/store/job-journal.js';
import { createStore } from '../src/actors/store/store.js';
import { InsertCounter } from './helpers/insert-counter.js';
import { forEachDatabase } from './helpers/databases.js';

const DAY_MS = 24 * 60 * 60 * 1000;

const id = (prefix: string): string => `${prefix}-${randomUUID()}`;

function event(seq: number, name = 'result', data?: Record<string, unknown>): JournalEvent {
  return { seq, event: name, data: data ?? { content: `chunk ${seq}` }, at: new Date().toISOString() };
}


/** A clock the test moves by hand. */
function manualClock(start = Date.now()): { now: () => Date; advance: (ms: number) => void } {
  let at = start;
  return { now: () => new Date(at), advance: (ms) => void (at += ms) };
}

forEachDatabase((getDatabase) => {
  it('applies the migrations once, and they go down and up again', async () => {
    const { db } = getDatabase();
    const tables = (await db.introspection.getTables()).map((table) => table.name);
    expect(tables).toEqual(
      expect.arrayContaining(['conversations', 'messages', 'jobs', 'job_events', 'drafts', 'documents']),
    );
    expect(await runMigrations(db)).toEqual([]);

    const down = await createMigrator(db).migrateTo(NO_MIGRATIONS);
    expect(down.error).toBeUndefined();
    expect((await db.introspection.getTables()).map((table) => table.name)).not.toContain('jobs');
    expect(await runMigrations(db)).toEqual(['0001-initial']);
  });

  it('writes messages through and reads the last N in order, also after a restart', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const conversation = id('conv');
    await store.ensureConversation(conversation, 'ws');
    await store.ensureConversation(conversation, 'ws'); // idempotent
    for (let i = 1; i <= 5; i += 1) {
      await store.appendMessage(conversation, { role: i % 2 ? 'user' : 'assistant', content: `m${i}` });
    }
    expect((await store.recentMessages(conversation, 3)).map((m) => m.content)).toEqual(['m3', 'm4', 'm5']);
    expect((await store.recentMessages(conversation, 10)).map((m) => m.content)).toEqual(
      ['m1', 'm2', 'm3', 'm4', 'm5'],
    );
    await store.appendMessage(conversation, { role: 'assistant', content: 'm6', jobId: 'job-x' });
    const cached = await store.recentMessages(conversation, 2);
    expect(cached.map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'm5', null],
      ['assistant', 'm6', 'job-x'],
    ]);

    // A new store over the same database is what a restarted process sees.
    const restarted = createStore(db);
    expect((await restarted.recentMessages(conversation, 10)).map((m) => m.content)).toEqual(
      ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'],
    );
    expect(await restarted.recentMessages(id('unknown'), 10)).toEqual([]);
  });

  it('serves history from memory until it has been idle for an hour', async () => {
    const { db } = getDatabase();
    const clock = manualClock();
    const store = createStore(db, { now: clock.now, cacheSize: 4 });
    const conversation = id('conv');
    await store.ensureConversation(conversation, 'synology', 'user-7');
    for (const content of ['a', 'b', 'c', 'd', 'e']) {
      await store.appendMessage(conversation, { role: 'user', content });
    }
    expect((await store.recentMessages(conversation, 4)).map((m) => m.content)).toEqual(['b', 'c', 'd', 'e']);
    // Longer than the cache holds: read from the database.
    expect((await store.recentMessages(conversation, 5)).map((m) => m.content)).toEqual(
      ['a', 'b', 'c', 'd', 'e'],
    );

    // Rows removed behind the store's back stay visible while the conversation is cached…
    await db.deleteFrom('messages').where('conversation_id', '=', conversation).execute();
    clock.advance(59 * 60 * 1000);
    expect(await store.recentMessages(conversation, 2)).toHaveLength(2);
    clock.advance(59 * 60 * 1000); // each read restarts the idle time
    expect(await store.recentMessages(conversation, 2)).toHaveLength(2);
    // …and are read again after an hour without use.
    clock.advance(60 * 60 * 1000);
    expect(await store.recentMessages(conversation, 2)).toEqual([]);
  });

  it('accepts a job durably: conversation, running job and user message in one step', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const conversation = id('conv');
    const jobId = id('job');
    const accepted = { jobId, conversationId: conversation, source: 'ws', mode: 'auto', text: '안녕' } as const;
    await store.acceptJob(accepted);
    expect((await store.recentMessages(conversation, 5)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', '안녕', jobId],
    ]);

    const other = createStore(db);
    expect((await other.recentMessages(conversation, 5)).map((m) => m.content)).toEqual(['안녕']);
    expect(await other.getJob(jobId)).toMatchObject({
      id: jobId,
      conversationId: conversation,
      status: 'running',
      mode: 'auto',
    });
    // The same job id twice is a bug upstream: it fails and changes nothing.
    await expect(store.acceptJob({ ...accepted, text: 'again' })).rejects.toThrow();
    expect((await other.recentMessages(conversation, 5)).map((m) => m.content)).toEqual(['안녕']);
  });

  it('records how a job ended, once', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const jobId = id('job');
    await store.createJob({ id: jobId, conversationId: id('conv'), source: 'openai', mode: 'deep' });
    expect(
      await store.finishJob(jobId, {
        status: 'done',
        branch: 'route',
        modelsUsed: ['gemma', 'exaone'],
        firstByteMs: 120.4,
        totalMs: 2345,
      }),
    ).toBe(true);
    expect(await store.finishJob(jobId, { status: 'error', reason: 'internal' })).toBe(false);
    const job = await store.getJob(jobId);
    expect(job).toMatchObject({
      status: 'done',
      branch: 'route',
      modelsUsed: ['gemma', 'exaone'],
      reason: null,
      firstByteMs: 120,
      totalMs: 2345,
      source: 'openai',
    });
    expect(job?.finishedAt).toBeInstanceOf(Date);
    expect(await store.getJob(id('missing'))).toBeNull();
  });

  it('journals 1000 events of 10 jobs in a few batched INSERTs, with contiguous seqs', async () => {
    const counter = new InsertCounter();
    const db = getDatabase().db.withPlugin(counter);
    const journal = createJobJournal(db, { maxBatch: 250 });
    const jobs = Array.from({ length: 10 }, () => id('job'));
    const started = performance.now();
    for (let seq = 1; seq <= 100; seq += 1) for (const jobId of jobs) journal.append(jobId, event(seq));
    const appendMs = performance.now() - started;
    expect(appendMs).toBeLessThan(250); // appending never waits for the database

    // Read at once: most events are still buffered or in flight, none may be missing.
    for (const jobId of jobs) {
      expect((await journal.eventsAfter(jobId, 0)).map((e) => e.seq)).toEqual(range(1, 100));
    }
    await journal.flush();
    expect(journal.pendingCount).toBe(0);
    expect(counter.inserts).toBeGreaterThanOrEqual(4); // 1000 / maxBatch
    expect(counter.inserts).toBeLessThanOrEqual(8);

    const fresh = createJobJournal(getDatabase().db);
    for (const jobId of jobs) {
      expect((await fresh.eventsAfter(jobId, 0)).map((e) => e.seq)).toEqual(range(1, 100));
    }
    const tail = await fresh.eventsAfter(jobs[3] ?? '', 97);
    expect(tail.map((e) => [e.seq, e.event, e.data])).toEqual([
      [98, 'result', { content: 'chunk 98' }],
      [99, 'result', { content: 'chunk 99' }],
      [100, 'result', { content: 'chunk 100' }],
    ]);
    expect(Date.parse(tail[0]?.at ?? '')).not.toBeNaN();
  });

  it('replays events that are not written yet, and writes them on close', async () => {
    const { db } = getDatabase();
    const journal = createJobJournal(db, { flushIntervalMs: 60_000, maxBatch: 10_000 });
    const jobId = id('job');
    journal.append(jobId, event(1, 'ack', {}));
    journal.append(jobId, event(2, 'queued', { position: 1 }));
    journal.append(jobId, event(3, 'result', { content: 'NUL \u0000 inside' }));
    const stored = () => db.selectFrom('job_events').select('seq').where('job_id', '=', jobId).execute();

    expect(await stored()).toEqual([]);
    expect((await journal.eventsAfter(jobId, 1)).map((e) => e.event)).toEqual(['queued', 'result']);
    expect(journal.pendingCount).toBe(3);

    await journal.close();
    expect(await stored()).toHaveLength(3);
    expect(() => journal.append(jobId, event(4))).toThrow(/closed/);
    // jsonb cannot hold U+0000; it is replaced rather than failing the batch.
    const replayed = await createJobJournal(db).eventsAfter(jobId, 2);
    expect(replayed[0]?.data).toEqual({ content: 'NUL \ufffd inside' });
  });

  it('drops only the event the database refuses and keeps writing the rest', async () => {
    const { db } = getDatabase();
    const errors: unknown[] = [];
    const journal = createJobJournal(db, { onError: (error) => errors.push(error) });
    const jobId = id('job');
    journal.append(jobId, event(1));
    journal.append(jobId, event(2 ** 31)); // beyond the integer column
    journal.append(jobId, event(2));
    await journal.flush();
    expect(errors).toHaveLength(1);
    expect((await createJobJournal(db).eventsAfter(jobId, 0)).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('ends jobs a crash left running with error/interrupted at the next seq', async () => {
    const { db } = getDatabase();
    const before = createStore(db);
    const [running, endedInJournal, finished] = [id('running'), id('ended'), id('finished')];
    for (const jobId of [running, endedInJournal, finished]) {
      await before.createJob({ id: jobId, conversationId: id('conv'), source: 'ws', mode: 'auto' });
    }
    before.journal.append(running, event(1, 'ack', {}));
    before.journal.append(running, event(2, 'processing', { message: 'thinking' }));
    before.journal.append(running, event(3));
    before.journal.append(endedInJournal, event(1, 'ack', {}));
    before.journal.append(endedInJournal, event(2, 'done', {}));
    before.journal.append(finished, event(1, 'done', {}));
    await before.finishJob(finished, { status: 'done' });
    await before.journal.flush(); // the process "crashes" here: two jobs never finished

    const after = createStore(db);
    const interrupted = await after.journal.interruptUnfinished();
    expect(interrupted).toContain(running);
    expect(interrupted).not.toContain(endedInJournal);
    expect(interrupted).not.toContain(finished);

    const events = await after.journal.eventsAfter(running, 0);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(events[3]).toMatchObject({ event: 'error', data: { reason: 'interrupted' } });
    expect(typeof events[3]?.data['message']).toBe('string');
    expect(await after.getJob(running)).toMatchObject({ status: 'error', reason: 'interrupted' });
    expect((await after.getJob(running))?.finishedAt).toBeInstanceOf(Date);

    expect((await after.journal.eventsAfter(endedInJournal, 0)).map((e) => e.event)).toEqual(['ack', 'done']);
    expect(await after.getJob(endedInJournal)).toMatchObject({ status: 'done', reason: null });
    expect(await after.getJob(finished)).toMatchObject({ status: 'done' });

    expect(await after.journal.interruptUnfinished()).not.toContain(running);
    expect(await after.journal.eventsAfter(running, 3)).toHaveLength(1);
  });

  it('keeps a draft until it expires or is cleared', async () => {
    const { db } = getDatabase();
    const clock = manualClock();
    const store = createStore(db, { now: clock.now });
    const conversation = id('conv');
    await store.ensureConversation(conversation, 'ws');
    expect(await store.loadDraft(conversation)).toBeNull();

    const draft = { title: '팀 회의', date: '2026-05-01', time: '15:00' };
    await store.saveDraft(conversation, draft, new Date(clock.now().getTime() + 10 * 60 * 1000));
    expect(await createStore(db, { now: clock.now }).loadDraft(conversation)).toEqual(draft);

    const inAMinute = () => new Date(clock.now().getTime() + 60_000);
    await store.saveDraft(conversation, { ...draft, time: '16:00' }, inAMinute());
    expect(await store.loadDraft(conversation)).toMatchObject({ time: '16:00' });
    clock.advance(61_000);
    expect(await store.loadDraft(conversation)).toBeNull();

    await store.saveDraft(conversation, draft, inAMinute());
    await store.clearDraft(conversation);
    expect(await store.loadDraft(conversation)).toBeNull();
  });

  it('finds documents in English and Korean and reads them', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    await store.upsertDocument({
      id: 'notes/budget.md',
      title: 'Quarterly budget',
      path: 'notes/budget.md',
      body: 'The quarterly budget meeting moved the hardware spending to the next quarter.',
    });
    await store.upsertDocument({
      id: 'notes/minutes.md',
      title: '주간 회의',
      body: '지난주 회의록 요약: 예산 검토와 일정 조정.',
    });
    await store.upsertDocument({ id: 'notes/particles.txt', title: '메모', body: '어제 회의록을 정리해서 공유했다.' });
    await store.upsertDocument({ id: 'notes/pasta.txt', title: 'Pasta', body: 'Boil water, add salt, cook pasta.' });

    const english = await store.searchDocuments('budget meeting');
    expect(english.map((hit) => hit.id)).toEqual(['notes/budget.md']);
    expect(english[0]).toMatchObject({
      title: 'Quarterly budget',
      path: 'notes/budget.md',
      match: 'fulltext',
    });
    expect(english[0]?.snippet).toContain('budget meeting');
    expect(english[0]?.rank).toBeGreaterThan(0);

    // Whole word first; the same word with a particle attached (회의록을) is found by the substring pass.
    const korean = await store.searchDocuments('회의록');
    expect(korean.map((hit) => [hit.id, hit.match])).toEqual([
      ['notes/minutes.md', 'fulltext'],
      ['notes/particles.txt', 'substring'],
    ]);
    expect(korean[0]?.snippet).toContain('회의록 요약');
    expect(korean[1]?.snippet).toContain('회의록을');
    // A particle on the query word is stripped for the substring pass.
    expect((await store.searchDocuments('회의록을 찾아줘')).map((hit) => hit.id)).toEqual(
      expect.arrayContaining(['notes/minutes.md', 'notes/particles.txt']),
    );
    expect((await store.searchDocuments('회의록', 1)).map((hit) => hit.id)).toEqual(['notes/minutes.md']);
    // Substring pass for English only when full text found nothing; LIKE wildcards are literal.
    expect((await store.searchDocuments('spend')).map((hit) => hit.match)).toEqual(['substring']);
    expect(await store.searchDocuments('100%_')).toEqual([]);
    expect(await store.searchDocuments('없는단어')).toEqual([]);
    expect(await store.searchDocuments('   ')).toEqual([]);
    expect(await store.searchDocuments('"unbalanced quote or -')).toBeInstanceOf(Array);

    await store.upsertDocument({ id: 'notes/pasta.txt', title: 'Pasta', body: 'Risotto instead.' });
    expect((await store.searchDocuments('risotto')).map((hit) => hit.id)).toEqual(['notes/pasta.txt']);
    expect(await store.searchDocuments('salt')).toEqual([]);
    expect(await store.readDocument('notes/pasta.txt')).toMatchObject({
      title: 'Pasta',
      body: 'Risotto instead.',
      path: null,
    });
    expect(await store.readDocument('nope')).toBeNull();
  });

  it('cleans up rows older than 7 days and keeps recent ones', async () => {
    const { db } = getDatabase();
    const past = manualClock(Date.now() - 8 * DAY_MS);
    const old = createStore(db, { now: past.now });
    const [oldConversation, oldJob] = [id('old-conv'), id('old-job')];
    await old.acceptJob({
      jobId: oldJob,
      conversationId: oldConversation,
      source: 'synology',
      mode: 'auto',
      text: 'old',
    });
    old.journal.append(oldJob, { ...event(1, 'ack', {}), at: past.now().toISOString() });
    await old.saveDraft(oldConversation, { title: 'old' }, new Date(past.now().getTime() + 60_000));
    await old.finishJob(oldJob, { status: 'done' });

    const store = createStore(db);
    const [conversation, job] = [id('conv'), id('job')];
    await store.acceptJob({ jobId: job, conversationId: conversation, source: 'ws', mode: 'auto', text: 'new' });
    store.journal.append(job, event(1, 'ack', {}));
    await store.journal.flush();
    // A conversation that is old but still in use keeps its recent messages only.
    const mixed = id('mixed');
    await old.ensureConversation(mixed, 'ws');
    await old.appendMessage(mixed, { role: 'user', content: 'before' });
    await store.appendMessage(mixed, { role: 'user', content: 'after' });

    const result = await store.cleanup();
    expect(result.conversations).toBeGreaterThanOrEqual(1);
    expect(result.messages).toBeGreaterThanOrEqual(2);
    expect(result.jobs).toBeGreaterThanOrEqual(1);
    expect(result.jobEvents).toBeGreaterThanOrEqual(1);

    expect(await store.getJob(oldJob)).toBeNull();
    expect(await store.journal.eventsAfter(oldJob, 0)).toEqual([]);
    expect(await store.recentMessages(oldConversation, 10)).toEqual([]);
    const oldDrafts = db.selectFrom('drafts').select('conversation_id').where('conversation_id', '=', oldConversation);
    expect(await oldDrafts.execute()).toEqual([]);

    expect(await store.getJob(job)).toMatchObject({ status: 'running' });
    expect(await store.journal.eventsAfter(job, 0)).toHaveLength(1);
    expect((await store.recentMessages(conversation, 10)).map((m) => m.content)).toEqual(['new']);
    expect((await store.recentMessages(mixed, 10)).map((m) => m.content)).toEqual(['after']);
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
