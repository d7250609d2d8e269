import { createActor, fromCallback, sendTo, setup, type AnyActorRef, type AnyActorLogic } from 'xstate';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createActorPool, type PoolCommand } from '../src/machines/actor-pool.js';
import { conversationMachine } from '../src/machines/conversation-machine.js';
import { jobMachine, type JobFinishedEvent, type JobInput, type JobSinkEvent, type JobToolkit } from '../src/machines/job-machine.js';
import { jobCounts, supervisorMachine, type SupervisorInput } from '../src/machines/supervisor-machine.js';

/**
 * The job supervisor when an actor in its pool crashes. Pool members are root actors that report to the
 * supervisor through the `supervisor` ref in their input, and a member that throws comes back as
 * `pool.failed`. A running job actor that throws (on start or on an event) ends with one terminal
 * `error`/`internal` event sent for it, its place goes to the next parked job, its conversation gets its
 * turn back, the other jobs keep running and the supervisor keeps serving; a conversation that throws,
 * or the pool itself, errors the supervisor. Jobs are a tiny stand-in for the job machine, driven by hand
 * (`go`), so that every step is synchronous and its order exact.
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
  historyBounds: { turns: 40, totalChars: 32_000 },
  reasonerTurns: 10,
};

/**
 * A job that waits for `go`, then sends its sink a terminal `done` and the supervisor of its input
 * `job.finished` (as the job machine does); the jobs in `crashes` throw instead, on start or on `go`.
 * Every job started is kept in `started` by id, with its input in `inputs`.
 */
function tinyJob(crashes: ReadonlyMap<string, 'start' | 'go'>, started: Map<string, AnyActorRef>, inputs = new Map<string, JobInput>()) {
  return setup({
    types: { input: {} as JobInput, context: {} as JobInput, events: {} as { type: 'go' } },
    actions: {
      register: ({ context, self }) => {
        started.set(context.jobId, self);
        inputs.set(context.jobId, context);
      },
      crashIf: ({ context }, params: { when: 'start' | 'go' }) => {
        if (crashes.get(context.jobId) === params.when) throw new Error(`job ${context.jobId} broke on ${params.when}`);
      },
      emitDone: sendTo(
        ({ context }) => context.sink,
        ({ context }) =>
          ({
            type: 'job.event',
            jobId: context.jobId,
            payload: { event: 'done', data: {} },
            outcome: { status: 'done', branch: 'direct', modelsUsed: [], firstByteMs: null, totalMs: 1, reason: null, answer: 'x' },
          }) satisfies JobSinkEvent,
      ),
      reportFinished: sendTo(
        ({ context }) => context.supervisor,
        ({ context }) => ({ type: 'job.finished', jobId: context.jobId, conversationId: context.conversationId }) satisfies JobFinishedEvent,
      ),
    },
  }).createMachine({
    context: ({ input }) => input,
    entry: ['register', { type: 'crashIf', params: { when: 'start' } }],
    on: { go: { actions: [{ type: 'crashIf', params: { when: 'go' } }, 'emitDone', 'reportFinished'] } },
  });
}

function startSupervisor(machine: typeof supervisorMachine, maxActiveJobs = 1) {
  const events: JobSinkEvent[] = [];
  const sink = createActor(fromCallback<JobSinkEvent>(({ receive }) => receive((event) => events.push(event)))).start();
  const input: SupervisorInput = {
    maxActiveJobs,
    modes: {},
    jobDefaults: { roles: { classifier: 'small', reasoner: 'large' }, fallbackToClassifier: true, sink, toolkit },
  };
  const supervisor = createActor(machine, { input });
  const errors: unknown[] = [];
  supervisor.subscribe({ error: (error) => errors.push(error) });
  supervisor.start();
  onTestFinished(() => {
    supervisor.stop();
    sink.stop();
  });
  const submit = (jobId: string, conversationId: string): void =>
    supervisor.send({ type: 'submit', spec: { jobId, owner: 'anonymous', conversationId, text: `text of ${jobId}`, mode: 'auto' } });
  /** The sink's events as `jobId event data` lines. */
  const lines = (): string[] => events.map((e) => `${e.jobId} ${e.payload.event} ${JSON.stringify(e.payload.data)}`);
  /** Conversations with a live actor → their unfinished jobs. */
  const conversations = (): Record<string, number> => Object.fromEntries(supervisor.getSnapshot().context.conversations.entries());
  return { supervisor, sink, events, lines, errors, submit, conversations };
}

const withPool = (pool: AnyActorLogic): typeof supervisorMachine => supervisorMachine.provide({ actors: { pool } });

const INTERNAL_OUTCOME = { status: 'error', branch: null, modelsUsed: [], firstByteMs: null, totalMs: 0, reason: 'internal', answer: null };

describe('supervisor: crashed actors', () => {
  it('gives each job the supervisor in its input, so that its job.finished reaches it', () => {
    const started = new Map<string, AnyActorRef>();
    const inputs = new Map<string, JobInput>();
    const machine = withPool(createActorPool({ job: tinyJob(new Map(), started, inputs), conversation: conversationMachine }));
    const { supervisor, sink, lines, errors, submit, conversations } = startSupervisor(machine);
    submit('j1', 'c1');
    const { supervisor: ref, sink: jobSink, toolkit: jobToolkit, ...rest } = inputs.get('j1')!;
    expect(ref).toBe(supervisor);
    expect(jobSink).toBe(sink);
    expect(jobToolkit).toBe(toolkit);
    expect(rest).toEqual({
      jobId: 'j1',
      conversationId: 'c1',
      text: 'text of j1',
      mode: 'auto',
      modeBackend: null,
      roles: { classifier: 'small', reasoner: 'large' },
      fallbackToClassifier: true,
      // Only an OpenAI API request brings its own history; a WebSocket job reads the conversation's.
      givenHistory: null,
    });
    // A member of the pool: a root actor, not in the supervisor's system.
    expect(started.get('j1')!.system).not.toBe(supervisor.system);
    expect(conversations()).toEqual({ c1: 1 });

    started.get('j1')!.send({ type: 'go' });
    expect(lines()).toEqual(['j1 done {}']);
    expect(started.get('j1')!.getSnapshot().status).toBe('stopped');
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 0, pending: 0 });
    expect(conversations()).toEqual({});
    expect(errors).toEqual([]);
    supervisor.stop();
  });

  it('ends a job whose actor throws with error/internal, starts the parked jobs and keeps serving', () => {
    const started = new Map<string, AnyActorRef>();
    const machine = withPool(createActorPool({ job: tinyJob(new Map([['j1', 'go']]), started), conversation: conversationMachine }));
    const { supervisor, events, lines, errors, submit, conversations } = startSupervisor(machine);
    submit('j1', 'c1');
    submit('j2', 'c2');
    submit('j3', 'c3');
    expect([...started.keys()]).toEqual(['j1']);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 2 });
    expect(lines()).toEqual(['j2 queued {"position":1}', 'j3 queued {"position":2}']);
    expect(conversations()).toEqual({ c1: 1, c2: 1, c3: 1 });

    started.get('j1')!.send({ type: 'go' });
    expect(started.get('j1')!.getSnapshot().status).toBe('error');
    expect((started.get('j1')!.getSnapshot().error as Error).message).toBe('job j1 broke on go');
    expect(supervisor.getSnapshot().status).toBe('active');
    expect([...started.keys()]).toEqual(['j1', 'j2']);
    expect(lines().slice(2)).toEqual(['j1 error {"message":"msg:internalError","reason":"internal"}', 'j3 queued {"position":1}']);
    expect(events[2]?.outcome).toEqual(INTERNAL_OUTCOME);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 1 });
    // c1's turn is over: with nothing more to do it said so and was stopped.
    expect(conversations()).toEqual({ c2: 1, c3: 1 });

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

  it('keeps the other running jobs going when one crashes', () => {
    const started = new Map<string, AnyActorRef>();
    const machine = withPool(createActorPool({ job: tinyJob(new Map([['j2', 'go']]), started), conversation: conversationMachine }));
    const { supervisor, events, lines, errors, submit, conversations } = startSupervisor(machine, 3);
    submit('j1', 'c1');
    submit('j2', 'c2');
    submit('j3', 'c3');
    submit('j4', 'c2');
    expect([...started.keys()]).toEqual(['j1', 'j2', 'j3']);
    expect(lines()).toEqual(['j4 queued {"position":1}']);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 3, pending: 1 });

    // j2 crashes: j1 and j3 are untouched, and j4, behind it in c2, runs.
    started.get('j2')!.send({ type: 'go' });
    expect(lines().slice(1)).toEqual(['j2 error {"message":"msg:internalError","reason":"internal"}']);
    expect(events[1]?.outcome).toEqual(INTERNAL_OUTCOME);
    expect(['j1', 'j2', 'j3', 'j4'].map((id) => started.get(id)?.getSnapshot().status)).toEqual(['active', 'error', 'active', 'active']);
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 3, pending: 0 });
    expect(conversations()).toEqual({ c1: 1, c2: 1, c3: 1 });

    for (const id of ['j3', 'j1', 'j4']) started.get(id)!.send({ type: 'go' });
    expect(lines().slice(2)).toEqual(['j3 done {}', 'j1 done {}', 'j4 done {}']);
    expect(['j1', 'j3', 'j4'].map((id) => started.get(id)!.getSnapshot().status)).toEqual(['stopped', 'stopped', 'stopped']);
    const { context, status } = supervisor.getSnapshot();
    expect(status).toBe('active');
    expect(jobCounts(context)).toEqual({ active: 0, pending: 0 });
    expect(conversations()).toEqual({});
    expect(errors).toEqual([]);
    supervisor.stop();
  });

  it("ends a job whose actor throws on start, and gives its conversation's next message the turn", () => {
    const started = new Map<string, AnyActorRef>();
    const machine = withPool(createActorPool({ job: tinyJob(new Map([['j2', 'start']]), started), conversation: conversationMachine }));
    const { supervisor, events, lines, errors, submit, conversations } = startSupervisor(machine);
    submit('j1', 'c1');
    submit('j2', 'c2');
    submit('j3', 'c2');
    expect(lines()).toEqual(['j2 queued {"position":1}', 'j3 queued {"position":1}']);
    expect(conversations()).toEqual({ c1: 1, c2: 2 });

    // j1 done → j2 starts and crashes at once → j3, behind it in c2, runs.
    started.get('j1')!.send({ type: 'go' });
    expect(lines().slice(2)).toEqual(['j1 done {}', 'j2 error {"message":"msg:internalError","reason":"internal"}']);
    expect(events[3]?.outcome).toEqual(INTERNAL_OUTCOME);
    expect([...started.keys()]).toEqual(['j1', 'j2', 'j3']);
    expect(started.get('j2')!.getSnapshot().status).toBe('error');
    expect(jobCounts(supervisor.getSnapshot().context)).toEqual({ active: 1, pending: 0 });
    expect(conversations()).toEqual({ c2: 1 });

    started.get('j3')!.send({ type: 'go' });
    expect(lines().slice(4)).toEqual(['j3 done {}']);
    const { context, status } = supervisor.getSnapshot();
    expect(status).toBe('active');
    expect(jobCounts(context)).toEqual({ active: 0, pending: 0 });
    expect(context.conversations.size).toBe(0);
    expect(errors).toEqual([]);
    supervisor.stop();
  });

  describe('errors the supervisor', () => {
    const conversationError = new Error('conversation broke');
    const conversationThatThrows = (action: 'startNow' | 'clearRunning') =>
      conversationMachine.provide({
        actions: {
          [action]: () => {
            throw conversationError;
          },
        },
      });

    type PoolFactory = (started: Map<string, AnyActorRef>) => AnyActorLogic;
    it.each<{ name: string; pool: PoolFactory; message: string; lines: string[] }>([
      {
        name: 'the pool throws',
        // Throws on the first send (the accepted message to its conversation), after the conversation's spawn.
        pool: () =>
          fromCallback<PoolCommand<{ job: typeof jobMachine; conversation: typeof conversationMachine }>>(({ receive }) =>
            receive((command) => {
              if (command.type === 'pool.send') throw new Error('pool broke');
            }),
          ),
        message: 'pool broke',
        lines: [],
      },
      {
        name: 'a conversation throws on its first message',
        pool: (started) => createActorPool({ job: tinyJob(new Map(), started), conversation: conversationThatThrows('startNow') }),
        message: 'conversation broke',
        lines: [],
      },
      {
        name: 'a conversation throws when its job has finished',
        pool: (started) => createActorPool({ job: tinyJob(new Map(), started), conversation: conversationThatThrows('clearRunning') }),
        message: 'conversation broke',
        lines: ['j1 done {}'],
      },
    ])('when $name', ({ pool, message, lines: expected }) => {
      const started = new Map<string, AnyActorRef>();
      const { supervisor, lines, errors, submit } = startSupervisor(withPool(pool(started)));
      submit('j1', 'c1');
      // Where the conversation lets j1 run, finish it.
      started.get('j1')?.send({ type: 'go' });
      const snapshot = supervisor.getSnapshot();
      expect(snapshot.status).toBe('error');
      expect(snapshot.error).toBeInstanceOf(Error);
      expect((snapshot.error as Error).message).toBe(message);
      if (message === 'conversation broke') expect(snapshot.error).toBe(conversationError);
      // The error observer got that very error, once.
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBe(snapshot.error);
      expect(lines()).toEqual(expected);
    });
  });
});
