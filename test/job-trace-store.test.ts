/**
 * The flight recorder's column on every supported database (PGlite always, PostgreSQL when
 * TEST_DATABASE_URL is set): a job's steps are written with its end, in the same statement.
 */
import { expect, it } from 'vitest';
import { createStore } from '../src/actors/store/store.js';
import type { TraceStep } from '../src/jobs/job-trace.js';
import { forEachDatabase } from './helpers/databases.js';
import { StatementCounter } from './helpers/statement-counter.js';
import { accept, event, id } from './helpers/store-writes.js';

const steps = (jobId: string): TraceStep[] => [
  { state: 'ack', event: 'xstate.init', at: 1_700_000_000_000 },
  { state: 'route.streaming.waiting', event: 'xstate.done.actor.readHealth', at: 1_700_000_000_250 },
  { state: 'cancelled', event: `cancel:${jobId.length}`, at: 1_700_000_001_000 },
];

forEachDatabase((getDatabase) => {
  it('writes the steps with the terminal event (also when the accept is in the same statement), and reads them back', async () => {
    const { db } = getDatabase();
    const taken: string[] = [];
    const store = createStore(db, {
      traceOf: (jobId) => {
        taken.push(jobId);
        return steps(jobId);
      },
    });
    const job = await accept(store, { owner: 'token:abc' });
    await store.journal.append(job.jobId, event(1, 'ack', {}));
    expect(taken).toEqual([]);
    await store.journal.append(job.jobId, event(2, 'cancelled', {}), { outcome: { status: 'cancelled' } });
    expect(taken).toEqual([job.jobId]);
    expect(await store.getJobTrace(job.jobId)).toEqual({ owner: 'token:abc', status: 'cancelled', steps: steps(job.jobId) });

    const counter = new StatementCounter();
    const counted = createStore(db.withPlugin(counter), { traceOf: steps });
    const quick = { jobId: id('job'), conversationId: id('conv'), source: 'ws', mode: 'auto', owner: 'anonymous', text: 'quick', newConversation: true } as const;
    await Promise.all([counted.acceptJob(quick), counted.journal.append(quick.jobId, event(1, 'done', {}), { outcome: { status: 'done', branch: 'direct' } })]);
    expect(counter.statements).toBe(1);
    expect(await counted.getJobTrace(quick.jobId)).toMatchObject({ status: 'done', steps: steps(quick.jobId) });
  });

  it('a job ended by a store failure keeps the steps so far; a job without steps has none; an unknown job is null', async () => {
    const { db } = getDatabase();
    const store = createStore(db, { traceOf: steps });
    const job = await accept(store);
    await store.journal.fail(job.jobId, event(1, 'error', { message: 'x', reason: 'store_unavailable' }), { status: 'error', reason: 'store_unavailable' });
    expect(await store.getJobTrace(job.jobId)).toMatchObject({ status: 'error', steps: steps(job.jobId) });

    const plain = createStore(db);
    const untraced = await accept(plain);
    await plain.journal.append(untraced.jobId, event(1, 'done', {}), { outcome: { status: 'done' } });
    expect(await plain.getJobTrace(untraced.jobId)).toMatchObject({ status: 'done', steps: [] });
    expect(await plain.getJobTrace(id('missing'))).toBeNull();
  });
});
