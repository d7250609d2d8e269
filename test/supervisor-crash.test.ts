import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createActorPool, type PoolCommand, type PoolInput } from '../src/machines/actor-pool.js';
import { conversationMachine } from '../src/machines/conversation-machine.js';
import { jobMachine, type JobFinishedEvent, type JobInput, type JobSinkEvent, type JobToolkit } from '../src/machines/job-machine.js';
import { jobCounts, supervisorMachine, type SupervisorInput } from '../src/machines/supervisor-machine.js';

/**
 * The job supervisor when an actor in its pool crashes: a running job actor that throws (on start or on
 * an event) ends with one terminal `error`/`internal` event sent for it, its place goes to the next parked
 * job, its conversation gets its turn back and the supervisor keeps serving; an error from any other actor
 * (the pool itself, a conversation) errors the supervisor. Jobs are a tiny stand-in for the job machine,
 * driven by hand (`go`), so that every step is synchronous and its order exact.
 */

const toolkit: JobToolkit = {
  systemPrompt: (task) => `prompt:${task}`,
  message: (key) => `msg:${key}`,
  preRoute: () => null,
  parseClassification: () => {
    throw new Error('not used');
  },
  now: () => new Date('2026-01-01T00:00:00Z'),
  timeZone: 'UTC',
  locale: 'en',
  isBusy: () => false,
  historyBounds: { turns: 40, totalChars: 32_000 },
  reasonerTurns: 10,
};

/**
 * A job that waits for `go`, then sends its sink a terminal `done` and its parent `job.finished`; the jobs
 * in `crashes` throw instead, on start or on `go`. Every job started is kept in `started` by id.
 */
function tinyJob(crashes: ReadonlyMap<string, 'start' | 'go'>, started: Map<string, AnyActorRef>) {
  return fromCallback<{ type: 'go' }, JobInput>(({ input, receive, self, sendBack }) => {
    started.set(input.jobId, self);
    if (crashes.get(input.jobId) === 'start') throw new Error(`job ${input.jobId} broke on start`);
    receive(() => {
      if (crashes.get(input.jobId) === 'go') throw new Error(`job ${input.jobId} broke on go`);
      input.sink.send({
        type: 'job.event',
        jobId: input.jobId,
        payload: { event: 'done', data: {} },
        outcome: { status: 'done', branch: 'direct', modelsUsed: [], firstByteMs: null, totalMs: 1, reason: null },
      } satisfies JobSinkEvent);
      sendBack({ type: 'job.finished', jobId: input.jobId, conversationId: input.conversationId } satisfies JobFinishedEvent);
    });
  });
}

function startSupervisor(machine: typeof supervisorMachine) {
  const events: JobSinkEvent[] = [];
  const sink = createActor(fromCallback<JobSinkEvent>(({ receive }) => receive((event) => events.push(event)))).start();
  const input: SupervisorInput = {
    maxActiveJobs: 1,
    modes: {},
    jobDefaults: { roles: { classifier: 'small', reasoner: 'large' }, fallbackToClassifier: true, sink, toolkit },
  };
  const supervisor = createActor(machine, { input });
  const errors: unknown[] = [];
  supervisor.subscribe({ error: (error) => errors.push(error) });
  supervisor.start();
  const submit = (jobId: string, conversationId: string): void =>
    supervisor.send({ type: 'submit', spec: { jobId, conversationId, text: `text of ${jobId}`, mode: 'auto' } });
  /** The sink's events as `jobId event data` lines. */
  const lines = (): string[] => events.map((e) => `${e.jobId} ${e.payload.event} ${JSON.stringify(e.payload.data)}`);
  return { supervisor, events, lines, errors, submit };
}

const INTERNAL_OUTCOME = { status: 'error', branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason: 'internal' };

describe('supervisor: crashed actors', () => {
  it('ends a job whose actor throws with error/internal, starts the parked jobs and keeps serving', () => {
    const started = new Map<string, AnyActorRef>();
    const machine = supervisorMachine.provide({
      actors: { pool: createActorPool({ job: tinyJob(new Map([['j1', 'go']]), started), conversation: conversationMachine }) },
    });
    const { supervisor, events, lines, errors, submit } = startSupervisor(machine);
    submit('j1', 'c1');
    submit('j2', 'c2');
    submit('j3', 'c3');
    expect([...started.keys()]).toEqual(['j1']);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 2 });
    expect(lines()).toEqual(['j2 queued {"position":1}', 'j3 queued {"position":2}']);

    started.get('j1')!.send({ type: 'go' });
    expect(started.get('j1')!.getSnapshot().status).toBe('error');
    expect(supervisor.getSnapshot().status).toBe('active');
    expect([...started.keys()]).toEqual(['j1', 'j2']);
    expect(lines().slice(2)).toEqual(['j1 error {"message":"msg:internalError","reason":"internal"}', 'j3 queued {"position":1}']);
    expect(events[2]?.outcome).toEqual(INTERNAL_OUTCOME);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 1 });
    // c1's turn is over: with nothing more to do it said so and was stopped.
    expect([...supervisor.getSnapshot().context.conversations]).toEqual(['c2', 'c3']);

    started.get('j2')!.send({ type: 'go' });
    expect([...started.keys()]).toEqual(['j1', 'j2', 'j3']);
    started.get('j3')!.send({ type: 'go' });
    expect(lines().slice(4)).toEqual(['j2 done {}', 'j3 done {}']);
    expect(events.filter((e) => e.jobId === 'j1' && e.outcome)).toHaveLength(1);
    expect(events.filter((e) => e.outcome).map((e) => [e.jobId, e.outcome?.status])).toEqual([
      ['j1', 'error'],
      ['j2', 'done'],
      ['j3', 'done'],
    ]);
    expect(['j2', 'j3'].map((id) => started.get(id)!.getSnapshot().status)).toEqual(['stopped', 'stopped']);

    const { context, status } = supervisor.getSnapshot();
    expect(status).toBe('active');
    expect(jobCounts(context)).toEqual({ active: 0, pending: 0 });
    expect(context.conversations.size).toBe(0);
    expect(errors).toEqual([]);
    supervisor.stop();
  });

  it("ends a job whose actor throws on start, and gives its conversation's next message the turn", () => {
    const started = new Map<string, AnyActorRef>();
    const machine = supervisorMachine.provide({
      actors: { pool: createActorPool({ job: tinyJob(new Map([['j2', 'start']]), started), conversation: conversationMachine }) },
    });
    const { supervisor, events, lines, errors, submit } = startSupervisor(machine);
    submit('j1', 'c1');
    submit('j2', 'c2');
    submit('j3', 'c2');
    expect(lines()).toEqual(['j2 queued {"position":1}', 'j3 queued {"position":1}']);

    // j1 done → j2 starts and crashes at once → j3, behind it in c2, runs.
    started.get('j1')!.send({ type: 'go' });
    expect(lines().slice(2)).toEqual(['j1 done {}', 'j2 error {"message":"msg:internalError","reason":"internal"}']);
    expect(events[3]?.outcome).toEqual(INTERNAL_OUTCOME);
    expect([...started.keys()]).toEqual(['j1', 'j2', 'j3']);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 0 });

    started.get('j3')!.send({ type: 'go' });
    expect(lines().slice(4)).toEqual(['j3 done {}']);
    const { context, status } = supervisor.getSnapshot();
    expect(status).toBe('active');
    expect(jobCounts(context)).toEqual({ active: 0, pending: 0 });
    expect(context.conversations.size).toBe(0);
    expect(errors).toEqual([]);
    supervisor.stop();
  });

  it.each([
    [
      'the pool',
      // Throws on the first send (the accepted message to its conversation), after the conversation's spawn.
      fromCallback<PoolCommand<{ job: typeof jobMachine; conversation: typeof conversationMachine }>, PoolInput>(({ receive }) =>
        receive((command) => {
          if (command.type === 'pool.send') throw new Error('pool broke');
        }),
      ),
      'pool broke',
    ],
    [
      'a conversation',
      createActorPool({
        job: tinyJob(new Map(), new Map()),
        conversation: conversationMachine.provide({
          actions: {
            startNow: () => {
              throw new Error('conversation broke');
            },
          },
        }),
      }),
      'conversation broke',
    ],
  ])('errors when %s throws', (_, pool, message) => {
    const { supervisor, events, errors, submit } = startSupervisor(supervisorMachine.provide({ actors: { pool } }));
    submit('j1', 'c1');
    const snapshot = supervisor.getSnapshot();
    expect(snapshot.status).toBe('error');
    expect(snapshot.error).toBeInstanceOf(Error);
    expect((snapshot.error as Error).message).toBe(message);
    expect(errors).toEqual([snapshot.error]);
    expect(events).toEqual([]);
  });
});
