import { randomUUID } from 'node:crypto';
import { createActor, fromCallback, type Actor, type AnyActorRef, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import type { OpenedStore } from '../actors/store/open-store.js';
import { openStore } from '../actors/store/open-store.js';
import type { Config } from '../config/config-schema.js';
import type { JobEvent } from '../jobs/job-event.js';
import { jobMachine, type JobSinkEvent } from '../machines/job-machine.js';
import { createActorPool } from '../machines/actor-pool.js';
import { conversationMachine } from '../machines/conversation-machine.js';
import { jobCounts, supervisorMachine } from '../machines/supervisor-machine.js';
import { DEFAULT_PROMPTS_DIR, loadPrompts } from '../prompts/load-prompts.js';
import { formatSystemStatus } from '../jobs/system-status-text.js';
import { BackendRegistry, type BackendRegistryDeps } from './backend-registry.js';
import { createJobActors } from './create-job-actors.js';
import { createJobToolkit } from './create-job-toolkit.js';
import { createToolRunner } from './create-tool-runner.js';
import { JobEventHub } from './job-event-hub.js';
import { SubmitRejected, type Accepted, type Runtime, type StatusBody, type SubmitInput, type Unsubscribe } from './runtime.js';

export type { Runtime, StatusBody } from './runtime.js';

export interface RuntimeDeps {
  log: Logger;
  createClient?: BackendRegistryDeps['createClient'];
  promptsDir?: string;
  now?: () => Date;
  /** Shorter heartbeats and timers for tests. */
  delays?: { classifyHeartbeat?: number; streamHeartbeat?: number };
  /** Sees every actor of the job supervisor (jobs, conversations): the Stately inspector, or tests. */
  inspect?: (event: InspectionEvent) => void;
  /**
   * The job supervisor crashed (a bug). Nothing can run jobs any more and XState leaves its pool
   * running, so the process should end and be restarted; jobs it left running end `interrupted` then.
   */
  onFatal?: (error: unknown) => void;
}

/** Messages of history loaded per job; the config's turn and size limits then cut it. */
const HISTORY_MESSAGES = 80;
/** A calendar draft waits this long for its yes/no. */
const DRAFT_TTL_MS = 30 * 60 * 1000;
/** The reasoner sees this many recent turns (seed 001). */
const REASONER_TURNS = 10;
/** How long a stopping runtime waits for cancelled jobs to reach their terminal event. */
const CANCEL_WAIT_MS = 5_000;

type SupervisorActor = Actor<typeof supervisorMachine>;

/**
 * The composition root: builds the store, the backend actors, the tools and the job supervisor, and
 * provides the implementations to the machines. Transports see only the {@link Runtime} interface.
 */
export function createRuntime(config: Config, deps: RuntimeDeps): Runtime {
  const { log } = deps;
  const now = deps.now ?? (() => new Date());
  const backends = new BackendRegistry(config.backends, deps);
  let opened: OpenedStore | undefined;
  let hub: JobEventHub | undefined;
  let supervisor: SupervisorActor | undefined;
  let sink: AnyActorRef | undefined;
  let stopping = false;
  /** Submitted jobs waiting for their start on the next turn (see `submit`): true once cancelled meanwhile. */
  const starting = new Map<string, boolean>();

  const status = (): StatusBody => {
    const context = supervisor?.getSnapshot().context;
    return {
      backends: backends.status(),
      jobs: context ? jobCounts(context) : { active: 0, pending: 0 },
    };
  };

  const requireStarted = () => {
    if (!opened || !hub || !supervisor) throw new Error('the runtime is not started');
    return { store: opened.store, hub, supervisor };
  };

  const start = async (): Promise<void> => {
    const prompts = await loadPrompts(deps.promptsDir ?? DEFAULT_PROMPTS_DIR, config.persona);
    opened = await openStore(
      { url: config.database.url, dataDir: config.database.dataDir },
      { onError: (error) => log.error({ err: error }, 'store background work failed') },
    );
    if (opened.interruptedJobIds.length > 0) log.warn({ jobs: opened.interruptedJobIds.length }, 'ended jobs interrupted by a restart');
    const store = opened.store;
    hub = new JobEventHub(store.journal, (jobId, outcome) => {
      if (!outcome) return;
      void store
        .finishJob(jobId, {
          status: outcome.status,
          reason: outcome.reason,
          branch: outcome.branch,
          modelsUsed: outcome.modelsUsed,
          firstByteMs: outcome.firstByteMs,
          totalMs: outcome.totalMs,
        })
        .catch((error: unknown) => log.error({ err: error, jobId }, 'could not record the end of a job'));
      log.info({ jobId, status: outcome.status, branch: outcome.branch, reason: outcome.reason, totalMs: outcome.totalMs }, 'job ended');
    });
    const events = hub;
    sink = createActor(
      fromCallback<JobSinkEvent>(({ receive }) => {
        receive((event) => events.publish(event.jobId, event.payload, event.outcome));
      }),
      { id: 'job-events' },
    ).start();

    const messages = prompts.messages(config.persona.locale);
    const tools = createToolRunner({ store, config, messages, now });
    const jobActors = createJobActors({
      store,
      backends,
      tools,
      describeStatus: (locale) => formatSystemStatus(status(), prompts.messages(locale), locale),
      draftTtlMs: DRAFT_TTL_MS,
      historyMessages: HISTORY_MESSAGES,
      now,
    });
    const machine = supervisorMachine.provide({
      actors: {
        pool: createActorPool(
          {
            job: jobMachine.provide({ actors: jobActors, ...(deps.delays ? { delays: deps.delays } : {}) }),
            conversation: conversationMachine,
          },
          deps.inspect ? { inspect: deps.inspect } : {},
        ),
      },
    });
    supervisor = createActor(machine, {
      id: 'supervisor',
      ...(deps.inspect ? { inspect: deps.inspect } : {}),
      input: {
        maxActiveJobs: config.limits.maxActiveJobs,
        modes: config.modes,
        jobDefaults: {
          roles: config.roles,
          fallbackToClassifier: config.fallback.reasonerToClassifier,
          sink,
          toolkit: createJobToolkit({ config, prompts, messages, backends, now, reasonerTurns: REASONER_TURNS }),
        },
      },
    });
    // An unobserved actor error would be an uncaught exception: log it instead.
    supervisor.subscribe({
      error: (error) => {
        log.fatal({ err: error }, 'job supervisor failed');
        deps.onFatal?.(error);
      },
    });
    backends.start();
    supervisor.start();
  };

  const submit = async (input: SubmitInput): Promise<Accepted> => {
    if (stopping) throw new SubmitRejected('shutting_down', 'the server is shutting down');
    const { store, hub: events, supervisor: jobs } = requireStarted();
    const mode = input.mode ?? 'auto';
    if (mode !== 'auto' && !(mode in config.modes)) {
      const known = ['auto', ...Object.keys(config.modes)].join(', ');
      throw new SubmitRejected('unknown_mode', `unknown mode "${mode}", expected one of: ${known}`);
    }
    if (input.text.trim().length === 0) throw new SubmitRejected('bad_request', 'the message is empty');
    // PostgreSQL text cannot hold U+0000; refusing it here beats an internal error at the write.
    if (input.text.includes('\u0000')) throw new SubmitRejected('bad_request', 'the message contains a NUL character (U+0000)');
    if (input.text.length > config.limits.messageChars) {
      throw new SubmitRejected('too_large', `the message has ${input.text.length} characters, over the limit of ${config.limits.messageChars}`);
    }
    const jobId = randomUUID();
    const conversationId = input.conversationId ?? randomUUID();
    events.open(jobId, input.owner);
    const accepted = store.acceptJob({
      jobId,
      conversationId,
      source: input.source,
      mode,
      owner: input.owner,
      text: input.text,
      newConversation: input.conversationId === undefined,
      ...(input.externalUser === undefined ? {} : { externalUser: input.externalUser }),
    });
    // The job starts while its message is being written: the classifier call overlaps the write. Its
    // events wait in the hub, where only a subscriber can see them, and one comes after `accepted`.
    // It starts on the next turn of the event loop, once the write is on its way to the database: the
    // write is the longer of the two, and starting a job takes the thread for a few hundred µs.
    starting.set(jobId, false);
    setImmediate(() => {
      const cancelled = starting.get(jobId);
      if (cancelled === undefined) return; // refused meanwhile: it never starts
      starting.delete(jobId);
      jobs.send({ type: 'submit', spec: { jobId, conversationId, text: input.text, mode } });
      if (cancelled) jobs.send({ type: 'cancel', jobId });
    });
    try {
      await accepted;
    } catch (error) {
      // Not durable, so it never existed: nobody hears of it again, and it stops (or never starts).
      starting.delete(jobId);
      events.discard(jobId);
      jobs.send({ type: 'cancel', jobId });
      throw error;
    }
    return { jobId, conversationId };
  };

  /** A job's owner, live or from the store; undefined for an unknown job. */
  const ownerOf = async (jobId: string): Promise<string | undefined> => {
    const { store, hub: events } = requireStarted();
    return events.ownerOf(jobId) ?? (await store.getJob(jobId))?.owner;
  };

  const cancel = async (jobId: string, owner: string): Promise<boolean> => {
    const { supervisor: jobs } = requireStarted();
    if ((await ownerOf(jobId)) !== owner) return false;
    if (starting.has(jobId)) starting.set(jobId, true); // the supervisor does not know it yet
    else jobs.send({ type: 'cancel', jobId });
    return true;
  };

  const subscribe = async (
    jobId: string,
    owner: string,
    afterSeq: number,
    listener: (event: JobEvent) => void,
  ): Promise<Unsubscribe | null> => {
    const { hub: events } = requireStarted();
    if ((await ownerOf(jobId)) !== owner) return null;
    return events.subscribe(jobId, afterSeq, listener);
  };

  const stop = async (graceMs = 10_000): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (hub && supervisor) {
      const idle = hub.whenIdle();
      const graceOver = await Promise.race([idle.then(() => false), delay(graceMs).then(() => true)]);
      if (graceOver) {
        log.warn({ jobs: hub.liveCount }, 'grace period over: cancelling the remaining jobs');
        supervisor.send({ type: 'cancelAll' });
        await Promise.race([idle, delay(CANCEL_WAIT_MS)]);
      }
      supervisor.stop();
    }
    sink?.stop();
    backends.stop();
    await opened?.close();
  };

  return { config, status, start, submit, cancel, subscribe, stop };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
