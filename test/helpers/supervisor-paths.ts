import { createActor, fromCallback, type SnapshotFrom } from 'xstate';
import type { JobToolkit } from '../../src/machines/job-machine.js';
import { servingOrder } from '../../src/machines/fair-line.js';
import { supervisorMachine, type SupervisorEvent, type SupervisorInput } from '../../src/machines/supervisor-machine.js';
import { transitionCover, type CoverWalk } from './transition-cover.js';

/**
 * The supervisor's generated paths (driven by `test/model-machines.test.ts`): its pool is inert, so the
 * events its jobs and conversations would send are the walk's events.
 */

type SupervisorSnapshot = SnapshotFrom<typeof supervisorMachine>;
const noop = (): void => {};
/** The supervisor with an inert pool: nothing is spawned, the walk plays its members. */
export const walkableSupervisorMachine = supervisorMachine.provide({ actors: { pool: fromCallback(noop) as never } });
const sink = createActor(fromCallback(noop)).start();
const toolkit = { message: (key: string) => key } as unknown as JobToolkit;

/** One job runs at a time, so the others park. */
export const supervisorInput: SupervisorInput = {
  maxActiveJobs: 1,
  modes: { daily: 'small' },
  jobDefaults: { roles: { classifier: 'small', reasoner: 'large' }, fallbackToClassifier: true, sink, toolkit },
};

const spec = (jobId: string) => ({ jobId, owner: 'o', conversationId: 'c1', text: 'x', mode: 'auto' });

/** Jobs are submitted (up to three); their conversation lets them run or tells where they wait; they finish, crash or are cancelled. */
function anyEvent(snapshot: SupervisorSnapshot): SupervisorEvent[] {
  if (snapshot.status !== 'active') return [];
  const jobs = [...snapshot.context.jobs.entries()];
  const events: SupervisorEvent[] = [];
  const next = ['j1', 'j2', 'j3'].find((id) => !snapshot.context.jobs.has(id));
  if (next) events.push({ type: 'submit', spec: spec(next) });
  for (const [jobId, job] of jobs) {
    if (job.phase === 'waiting') {
      events.push({ type: 'conversation.ready', spec: spec(jobId) });
      events.push({ type: 'conversation.waiting', jobId, position: 1 });
      events.push({ type: 'conversation.dropped', jobId });
    }
    if (job.phase === 'active') {
      events.push({ type: 'job.finished', jobId, conversationId: 'c1' });
      events.push({ type: 'pool.failed', id: `job:${jobId}`, error: new Error('a bug in the job') } as SupervisorEvent);
    }
    events.push({ type: 'cancel', jobId });
  }
  events.push({ type: 'conversation.idle', conversationId: 'c1' });
  events.push({ type: 'pool.failed', id: 'conversation:c1', error: new Error('a bug in the conversation') } as SupervisorEvent);
  if (jobs.length > 0) events.push({ type: 'cancelAll' });
  return events;
}

const key = (s: SupervisorSnapshot): string =>
  JSON.stringify([
    s.status,
    [...s.context.jobs.entries()].sort(),
    s.context.activeCount,
    servingOrder(s.context.parked).map((parked) => parked.jobId),
    [...s.context.conversations.entries()].sort(),
  ]);

/** Paths that take every transition of the supervisor. */
export function supervisorCoverWalks(): CoverWalk[] {
  return transitionCover(walkableSupervisorMachine, { input: supervisorInput, events: anyEvent as never, key: key as never });
}
