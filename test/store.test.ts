/**
 * The store on every supported database (PGlite always, PostgreSQL when TEST_DATABASE_URL is set).
 * One database per dialect is shared by the whole file, so tests use ids of their own.
 */
import { NO_MIGRATIONS, sql } from 'kysely';
import { migrations } from '../migrations/index.js';
import { expect, it } from 'vitest';
import { createMigrator, runMigrations } from '../src/actors/store/create-database.js';
import { EarlierWriteFailedError } from '../src/actors/store/ordered-writer.js';
import { StoreRejectedError } from '../src/actors/store/store-errors.js';
import { createStore } from '../src/actors/store/store.js';
import { ownerId } from '../src/transport/owner-id.js';
import { forEachDatabase } from './helpers/databases.js';
import { StatementCounter } from './helpers/statement-counter.js';
import { accept, answer, event, id } from './helpers/store-writes.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A clock the test moves by hand. */
function manualClock(start = Date.now()): { now: () => Date; advance: (ms: number) => void } {
  let at = start;
  return { now: () => new Date(at), advance: (ms) => void (at += ms) };
}

forEachDatabase((getDatabase) => {
  it('applies the migrations once, and they go down and up again', async () => {
    const { db } = getDatabase();
    const tables = (await db.introspection.getTables()).map((table) => table.name);
    expect(tables).toEqual(expect.arrayContaining(['conversations', 'messages', 'jobs', 'job_events', 'drafts', 'documents']));
    expect(await runMigrations(db)).toEqual([]);

    const down = await createMigrator(db).migrateTo(NO_MIGRATIONS);
    expect(down.error).toBeUndefined();
    expect((await db.introspection.getTables()).map((table) => table.name)).not.toContain('jobs');
    expect(await runMigrations(db)).toEqual(Object.keys(migrations));
  });

  it('rewrites the raw tokens of older rows into owner ids, and gives conversations their owner', async () => {
    const { db } = getDatabase();
    await createMigrator(db).migrateTo('0001-initial');
    const [conversation, anonymous] = [id('conv'), id('conv')];
    const at = new Date();
    await sql`insert into conversations (id, source, created_at, updated_at) values (${conversation}, 'ws', ${at}, ${at}), (${anonymous}, 'ws', ${at}, ${at})`.execute(db);
    await sql`insert into jobs (id, conversation_id, source, mode, owner, status, created_at)
      values (${id('job')}, ${conversation}, 'ws', 'auto', 'secret-token-123', 'done', ${at}),
             (${id('job')}, ${anonymous}, 'ws', 'auto', 'anonymous', 'done', ${at})`.execute(db);
    expect(await runMigrations(db)).toEqual(Object.keys(migrations).slice(1));

    const owners = await db.selectFrom('jobs').select('owner').where('conversation_id', 'in', [conversation, anonymous]).orderBy('owner').execute();
    expect(owners.map((row) => row.owner)).toEqual(['anonymous', ownerId('secret-token-123')].sort());
    const store = createStore(db);
    expect(await store.conversationOwner(conversation)).toBe(ownerId('secret-token-123'));
    expect(await store.conversationOwner(anonymous)).toBe('anonymous');
    expect(await store.conversationOwner(id('missing'))).toBeNull();
    const raw = await sql<{ n: number }>`select count(*)::int as n from jobs where owner like '%secret-token%'`.execute(db);
    expect(raw.rows[0]?.n).toBe(0);
  });

  it('accepts a job durably: conversation with its owner, running job and user message in one statement', async () => {
    const counter = new StatementCounter();
    const { db } = getDatabase();
    const store = createStore(db.withPlugin(counter));
    const owner = ownerId('some-token-1234');
    const job = await accept(store, { text: '안녕', owner, clientMsgId: 'client-1' });
    expect(counter.statements).toBe(1);
    expect((await store.recentMessages(job.conversationId, 5)).map((m) => [m.role, m.content, m.jobId])).toEqual([['user', '안녕', job.jobId]]);

    const other = createStore(db);
    expect((await other.recentMessages(job.conversationId, 5)).map((m) => m.content)).toEqual(['안녕']);
    expect(await other.getJob(job.jobId)).toMatchObject({ id: job.jobId, conversationId: job.conversationId, status: 'running', mode: 'auto', owner, clientMsgId: 'client-1' });
    expect(await other.conversationOwner(job.conversationId)).toBe(owner);
    // The same job id twice is a bug upstream: it fails and changes nothing.
    await expect(store.acceptJob({ ...job, text: 'again', newConversation: false })).rejects.toBeInstanceOf(StoreRejectedError);
    expect((await other.recentMessages(job.conversationId, 5)).map((m) => m.content)).toEqual(['안녕']);
  });

  it('finds a job by its owner and clientMsgId within the window, and no one else', async () => {
    const { db } = getDatabase();
    const clock = manualClock();
    const store = createStore(db, { now: clock.now });
    const alice = ownerId('alice-token-1');
    const job = await accept(store, { owner: alice, clientMsgId: 'retry-me' });
    const since = new Date(clock.now().getTime() - DAY_MS);
    expect(await store.findJobByClientMsgId(alice, 'retry-me', since)).toEqual({ jobId: job.jobId, conversationId: job.conversationId });
    expect(await store.findJobByClientMsgId(ownerId('bob-token-12'), 'retry-me', since)).toBeNull();
    expect(await store.findJobByClientMsgId(alice, 'other', since)).toBeNull();
    expect(await store.findJobByClientMsgId(alice, 'retry-me', new Date(clock.now().getTime() + 1))).toBeNull();
  });

  it('knows from memory that a clientMsgId is new once the recent ones are loaded: no read per chat', async () => {
    const { db } = getDatabase();
    const counter = new StatementCounter();
    const store = createStore(db.withPlugin(counter));
    const alice = ownerId('alice-token-2');
    const earlier = await createStore(db).acceptJob({ jobId: id('job'), conversationId: id('conv'), source: 'ws', mode: 'auto', owner: alice, text: 'x', clientMsgId: 'before-start', newConversation: true });
    expect(earlier).toBeUndefined();
    await store.loadRecentClientMsgIds();
    counter.statements = 0;
    const since = new Date(Date.now() - DAY_MS);
    expect(await store.findJobByClientMsgId(alice, 'never-used', since)).toBeNull();
    expect(await store.findJobByClientMsgId(alice, 'before-start', since)).toMatchObject({ conversationId: expect.any(String) });
    expect(counter.statements).toBe(0);
    const job = await accept(store, { owner: alice, clientMsgId: 'after-start' });
    counter.statements = 0;
    expect(await store.findJobByClientMsgId(alice, 'after-start', since)).toEqual({ jobId: job.jobId, conversationId: job.conversationId });
    expect(counter.statements).toBe(0);
    // A job erased after its accept was reported failed is nobody's earlier job.
    await store.journal.erase(job.jobId);
    expect(await store.findJobByClientMsgId(alice, 'after-start', since)).toBeNull();
  });

  it('records answers with their done events and reads the last N in order, also after a restart', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const first = await accept(store, { text: 'm1' });
    await answer(store, first, 'm2');
    const conversationId = first.conversationId;
    const second = await accept(store, { conversationId, text: 'm3' });
    await answer(store, second, 'm4');
    const third = await accept(store, { conversationId, text: 'm5' });
    expect((await store.recentMessages(conversationId, 3)).map((m) => m.content)).toEqual(['m3', 'm4', 'm5']);
    await answer(store, third, 'm6');
    expect((await store.recentMessages(conversationId, 2)).map((m) => [m.role, m.content, m.jobId])).toEqual([
      ['user', 'm5', third.jobId],
      ['assistant', 'm6', third.jobId],
    ]);
    // A new store over the same database is what a restarted process sees.
    const restarted = createStore(db);
    expect((await restarted.recentMessages(conversationId, 10)).map((m) => m.content)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    expect(await restarted.recentMessages(id('unknown'), 10)).toEqual([]);
    expect(await restarted.getJob(third.jobId)).toMatchObject({ status: 'done', branch: 'direct', modelsUsed: ['small'], totalMs: 12 });
  });

  it('serves history from memory until it has been idle for an hour', async () => {
    const { db } = getDatabase();
    const clock = manualClock();
    const store = createStore(db, { now: clock.now, cacheSize: 4 });
    const first = await accept(store, { text: 'a', source: 'synology', externalUser: 'user-7' });
    for (const text of ['b', 'c', 'd', 'e']) await accept(store, { conversationId: first.conversationId, text, newConversation: false });
    const conversation = first.conversationId;
    expect((await store.recentMessages(conversation, 4)).map((m) => m.content)).toEqual(['b', 'c', 'd', 'e']);
    // Longer than the cache holds: read from the database.
    expect((await store.recentMessages(conversation, 5)).map((m) => m.content)).toEqual(['a', 'b', 'c', 'd', 'e']);

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

  it('keeps the history of at most cacheConversations conversations, the least recently used dropped first', async () => {
    const { db } = getDatabase();
    const store = createStore(db, { cacheConversations: 2 });
    const [a, b, c] = [await accept(store, { text: 'a' }), await accept(store, { text: 'b' }), await accept(store, { text: 'c' })];
    // Rows removed behind the store's back show which conversations are still served from memory.
    for (const { conversationId } of [a, b, c]) await db.deleteFrom('messages').where('conversation_id', '=', conversationId).execute();
    expect((await store.recentMessages(c.conversationId, 5)).map((m) => m.content)).toEqual(['c']);
    expect((await store.recentMessages(b.conversationId, 5)).map((m) => m.content)).toEqual(['b']);
    expect(await store.recentMessages(a.conversationId, 5)).toEqual([]); // dropped when c came in
    // Reading a (now cached, empty) pushed out c, the least recently used; b was read after c.
    expect((await store.recentMessages(b.conversationId, 5)).map((m) => m.content)).toEqual(['b']);
    expect(await store.recentMessages(c.conversationId, 5)).toEqual([]);
  });

  it('records how a job ended with its terminal event, once', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const job = await accept(store, { source: 'openai', mode: 'deep' });
    await store.journal.append(job.jobId, event(1, 'ack', {}));
    await store.journal.append(job.jobId, event(2, 'error', { message: 'x', reason: 'backend_timeout' }), {
      outcome: { status: 'error', reason: 'backend_timeout', branch: 'route', modelsUsed: ['gemma', 'exaone'], firstByteMs: 120.4, totalMs: 2345 },
    });
    const ended = await store.getJob(job.jobId);
    expect(ended).toMatchObject({ status: 'error', reason: 'backend_timeout', branch: 'route', modelsUsed: ['gemma', 'exaone'], firstByteMs: 120, totalMs: 2345, source: 'openai' });
    expect(ended?.finishedAt).toBeInstanceOf(Date);
    expect(await store.getJob(id('missing'))).toBeNull();
    // An accept and its end in the same statement: the job row is inserted ended.
    const quick = { jobId: id('job'), conversationId: id('conv'), source: 'ws', mode: 'auto', owner: 'anonymous', text: 'quick', newConversation: true } as const;
    const both = [store.acceptJob(quick), answer(store, quick, 'quick answer')];
    await Promise.all(both);
    expect(await store.getJob(quick.jobId)).toMatchObject({ status: 'done', branch: 'direct' });
    store.clearCache();
    expect((await store.recentMessages(quick.conversationId, 5)).map((m) => m.content)).toEqual(['quick', 'quick answer']);
  });

  it('journals 1000 events of 10 jobs in a few statements, each job contiguous, committed in order', async () => {
    const counter = new StatementCounter();
    const store = createStore(getDatabase().db.withPlugin(counter), { maxBatch: 250 });
    const jobs = await Promise.all(Array.from({ length: 10 }, () => accept(store)));
    counter.statements = 0;
    const committed: string[] = [];
    const writes: Array<Promise<void>> = [];
    for (let seq = 1; seq <= 100; seq += 1) {
      for (const { jobId } of jobs) writes.push(store.journal.append(jobId, event(seq)).then(() => void committed.push(`${jobId}:${seq}`)));
    }
    await Promise.all(writes);
    expect(counter.statements).toBeGreaterThanOrEqual(4); // 1000 / maxBatch
    expect(counter.statements).toBeLessThanOrEqual(5);
    // Commits are reported in the order of the appends.
    expect(committed).toEqual(Array.from({ length: 100 }, (_, i) => jobs.map(({ jobId }) => `${jobId}:${i + 1}`)).flat());

    const fresh = createStore(getDatabase().db);
    for (const { jobId } of jobs) expect((await fresh.journal.eventsAfter(jobId, 0)).map((e) => e.seq)).toEqual(range(1, 100));
    const tail = await fresh.journal.eventsAfter(jobs[3]?.jobId ?? '', 97);
    expect(tail.map((e) => [e.seq, e.event, e.data])).toEqual([
      [98, 'result', { content: 'chunk 98' }],
      [99, 'result', { content: 'chunk 99' }],
      [100, 'result', { content: 'chunk 100' }],
    ]);
    expect(Date.parse(tail[0]?.at ?? '')).not.toBeNaN();
  });

  it('stores text jsonb cannot hold (U+0000, lone surrogates) as U+FFFD instead of failing', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const job = await accept(store);
    await store.journal.append(job.jobId, event(1, 'result', { content: 'NUL \u0000 and \ud800 lone' }));
    const [stored] = await createStore(db).journal.eventsAfter(job.jobId, 0);
    expect(stored?.data).toEqual({ content: 'NUL \ufffd and \ufffd lone' });
  });

  it("never leaves a gap: a refused event fails its job's later events, other jobs' are written", async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const [a, b] = await Promise.all([accept(store), accept(store)]);
    const writes = [
      store.journal.append(a.jobId, event(1)),
      store.journal.append(b.jobId, event(1)),
      store.journal.append(a.jobId, event(2 ** 31)), // beyond the integer column: the database refuses it
      store.journal.append(b.jobId, event(2)),
      store.journal.append(a.jobId, event(2)),
    ];
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected']);
    // A later event of the failed job is not written even in a batch of its own.
    await expect(store.journal.append(a.jobId, event(3))).rejects.toBeInstanceOf(EarlierWriteFailedError);
    expect((await store.journal.eventsAfter(a.jobId, 0)).map((e) => e.seq)).toEqual([]);
    expect((await store.journal.eventsAfter(b.jobId, 0)).map((e) => e.seq)).toEqual([1, 2]);

    // The repair ends the job where its journal stopped, and frees the job for writes again.
    await store.journal.fail(a.jobId, event(1, 'error', { message: 'x', reason: 'internal' }), { status: 'error', reason: 'internal' });
    expect((await store.journal.eventsAfter(a.jobId, 0)).map((e) => [e.seq, e.event])).toEqual([[1, 'error']]);
    expect(await store.getJob(a.jobId)).toMatchObject({ status: 'error', reason: 'internal' });
  });

  it('a repair replaces whatever an ambiguous write committed at or after its seq, and the answer', async () => {
    const { db } = getDatabase();
    const store = createStore(db);
    const job = await accept(store);
    await store.journal.append(job.jobId, event(1, 'ack', {}));
    await store.journal.append(job.jobId, event(2));
    // The client was told `error` at seq 2 while these were (unknown to us) committed.
    await answer(store, job, 'an answer nobody saw', 3);
    await store.journal.fail(job.jobId, event(2, 'error', { message: 'x', reason: 'store_unavailable' }), { status: 'error', reason: 'store_unavailable' });
    const fresh = createStore(db);
    expect((await fresh.journal.eventsAfter(job.jobId, 0)).map((e) => [e.seq, e.event])).toEqual([
      [1, 'ack'],
      [2, 'error'],
    ]);
    expect(await fresh.getJob(job.jobId)).toMatchObject({ status: 'error', reason: 'store_unavailable' });
    expect((await fresh.recentMessages(job.conversationId, 10)).map((m) => m.role)).toEqual(['user']);

    // An accept reported failed is erased, whatever of it was written.
    const gone = await accept(store, { conversationId: job.conversationId, newConversation: false, text: 'gone' });
    await store.journal.append(gone.jobId, event(1, 'ack', {}));
    await store.journal.erase(gone.jobId);
    expect(await fresh.getJob(gone.jobId)).toBeNull();
    expect(await fresh.journal.eventsAfter(gone.jobId, 0)).toEqual([]);
    fresh.clearCache();
    expect((await fresh.recentMessages(job.conversationId, 10)).map((m) => m.content)).toEqual(['hello']);
  });

  it('ends jobs a crash left running with error/interrupted at the next seq', async () => {
    const { db } = getDatabase();
    const before = createStore(db);
    const [running, endedInJournal] = await Promise.all([accept(before), accept(before)]);
    await before.journal.append(running.jobId, event(1, 'ack', {}));
    await before.journal.append(running.jobId, event(2, 'processing', { message: 'thinking' }));
    await before.journal.append(running.jobId, event(3));
    await before.journal.append(endedInJournal.jobId, event(1, 'ack', {}));
    await answer(before, endedInJournal, 'done before the crash', 2);
    // A terminal event journaled while the job row still says running (a row written by an older version).
    await db.updateTable('jobs').set({ status: 'running', finished_at: null }).where('id', '=', endedInJournal.jobId).execute();

    const after = createStore(db);
    const interrupted = await after.journal.interruptUnfinished();
    expect(interrupted).toContain(running.jobId);
    expect(interrupted).not.toContain(endedInJournal.jobId);

    const events = await after.journal.eventsAfter(running.jobId, 0);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(events[3]).toMatchObject({ event: 'error', data: { reason: 'interrupted' } });
    expect(typeof events[3]?.data['message']).toBe('string');
    expect(await after.getJob(running.jobId)).toMatchObject({ status: 'error', reason: 'interrupted' });
    expect((await after.getJob(running.jobId))?.finishedAt).toBeInstanceOf(Date);

    expect((await after.journal.eventsAfter(endedInJournal.jobId, 0)).map((e) => e.event)).toEqual(['ack', 'done']);
    expect(await after.getJob(endedInJournal.jobId)).toMatchObject({ status: 'done', reason: null });

    expect(await after.journal.interruptUnfinished()).not.toContain(running.jobId);
    expect(await after.journal.eventsAfter(running.jobId, 3)).toHaveLength(1);
  });

  it('keeps a draft until it expires or is cleared', async () => {
    const { db } = getDatabase();
    const clock = manualClock();
    const store = createStore(db, { now: clock.now });
    const job = await accept(store);
    const conversation = job.conversationId;
    expect(await store.loadDraft(conversation)).toBeNull();

    const draft = { title: '팀 회의', date: '2026-05-01', time: '15:00' };
    await store.saveDraft(job.jobId, conversation, draft, new Date(clock.now().getTime() + 10 * 60 * 1000));
    expect(await createStore(db, { now: clock.now }).loadDraft(conversation)).toEqual(draft);

    const inAMinute = () => new Date(clock.now().getTime() + 60_000);
    await store.saveDraft(job.jobId, conversation, { ...draft, time: '16:00' }, inAMinute());
    expect(await store.loadDraft(conversation)).toMatchObject({ time: '16:00' });
    clock.advance(61_000);
    expect(await store.loadDraft(conversation)).toBeNull();

    await store.saveDraft(job.jobId, conversation, draft, inAMinute());
    await store.clearDraft(job.jobId, conversation);
    expect(await store.loadDraft(conversation)).toBeNull();
    expect(await createStore(db, { now: clock.now }).loadDraft(conversation)).toBeNull();
  });

  it('answers ping while the database works', async () => {
    const store = createStore(getDatabase().db);
    await expect(store.ping()).resolves.toBeUndefined();
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
    await store.upsertDocument({ id: 'notes/minutes.md', title: '주간 회의', body: '지난주 회의록 요약: 예산 검토와 일정 조정.' });
    await store.upsertDocument({ id: 'notes/particles.txt', title: '메모', body: '어제 회의록을 정리해서 공유했다.' });
    await store.upsertDocument({ id: 'notes/pasta.txt', title: 'Pasta', body: 'Boil water, add salt, cook pasta.' });

    const english = await store.searchDocuments('budget meeting');
    expect(english.map((hit) => hit.id)).toEqual(['notes/budget.md']);
    expect(english[0]).toMatchObject({ title: 'Quarterly budget', path: 'notes/budget.md', match: 'fulltext' });
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
    expect((await store.searchDocuments('회의록을 찾아줘')).map((hit) => hit.id)).toEqual(expect.arrayContaining(['notes/minutes.md', 'notes/particles.txt']));
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
    expect(await store.readDocument('notes/pasta.txt')).toMatchObject({ title: 'Pasta', body: 'Risotto instead.', path: null });
    expect(await store.readDocument('nope')).toBeNull();
  });

  it('cleans up rows older than 7 days and keeps recent ones', async () => {
    const { db } = getDatabase();
    const past = manualClock(Date.now() - 8 * DAY_MS);
    const old = createStore(db, { now: past.now });
    const oldJob = await accept(old, { source: 'synology', text: 'old' });
    await old.journal.append(oldJob.jobId, event(1, 'ack', {}, past.now()));
    await old.saveDraft(oldJob.jobId, oldJob.conversationId, { title: 'old' }, new Date(past.now().getTime() + 60_000));
    await old.journal.append(oldJob.jobId, event(2, 'done', {}, past.now()), { outcome: { status: 'done' } });

    const store = createStore(db);
    const job = await accept(store, { text: 'new' });
    await store.journal.append(job.jobId, event(1, 'ack', {}));
    // A conversation that is old but still in use keeps its recent messages only.
    const mixed = await accept(old, { text: 'before' });
    await accept(store, { conversationId: mixed.conversationId, newConversation: false, text: 'after' });

    const result = await store.cleanup();
    expect(result.conversations).toBeGreaterThanOrEqual(1);
    expect(result.messages).toBeGreaterThanOrEqual(2);
    expect(result.jobs).toBeGreaterThanOrEqual(1);
    expect(result.jobEvents).toBeGreaterThanOrEqual(1);

    expect(await store.getJob(oldJob.jobId)).toBeNull();
    expect(await store.journal.eventsAfter(oldJob.jobId, 0)).toEqual([]);
    expect(await store.recentMessages(oldJob.conversationId, 10)).toEqual([]);
    const oldDrafts = db.selectFrom('drafts').select('conversation_id').where('conversation_id', '=', oldJob.conversationId);
    expect(await oldDrafts.execute()).toEqual([]);

    expect(await store.getJob(job.jobId)).toMatchObject({ status: 'running' });
    expect(await store.journal.eventsAfter(job.jobId, 0)).toHaveLength(1);
    expect((await store.recentMessages(job.conversationId, 10)).map((m) => m.content)).toEqual(['new']);
    expect((await store.recentMessages(mixed.conversationId, 10)).map((m) => m.content)).toEqual(['after']);
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
