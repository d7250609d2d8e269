import { randomUUID } from 'node:crypto';
import { createActor, fromCallback, type Actor, type AnyActorRef, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import { hasPgliteDatabase } from '../actors/store/create-pglite-data-dir.js';
import type { OpenedStore } from '../actors/store/open-store.js';
import { openStore } from '../actors/store/open-store.js';
import { isStoreUnavailable, type StoreUnavailableError } from '../actors/store/store-errors.js';
import { toErrorInfo } from '../errors.js';
import { DEFAULT_DRAFT_TTL_MS, type Config } from '../config/config-schema.js';
import type { JobEvent } from '../jobs/job-event.js';
import { jobMachine, type JobSinkEvent } from '../machines/job-machine.js';
import type { ReactRoundEvent } from '../machines/react-machine.js';
import { createActorPool } from '../machines/actor-pool.js';
import { createMetrics } from '../metrics/create-metrics.js';
import { conversationMachine } from '../machines/conversation-machine.js';
import { jobCounts, supervisorMachine } from '../machines/supervisor-machine.js';
import { DEFAULT_PROMPTS_DIR, loadPrompts } from '../prompts/load-prompts.js';
import { offeredTools } from '../prompts/offered-tools.js';
import { formatSystemStatus } from '../jobs/system-status-text.js';
import { BackendRegistry, type BackendRegistryDeps } from './backend-registry.js';
import { createJobActors } from './create-job-actors.js';
import { createJobToolkit } from './create-job-toolkit.js';
import { createToolRunner } from './create-tool-runner.js';
import { JobEventHub } from './job-event-hub.js';
import { JobTraceRecorder } from './job-trace-recorder.js';
import { toTimeline, type JobTraceBody } from '../jobs/job-trace.js';
import { hasNul, storableText } from '../storable-text.js';
import { SubmitRejected, type Accepted, type HealthBody, type Runtime, type StatusBody, type SubmitInput, type Unsubscribe } from './runtime.js';

export type { Runtime, StatusBody } from './runtime.js';

export interface RuntimeDeps {
  log: Logger;
  createClient?: BackendRegistryDeps['createClient'];
  promptsDir?: string;
  now?: () => Date;
  /** Shorter heartbeats and timers for tests. */
  delays?: { classifyHeartbeat?: number; streamHeartbeat?: number };
  /**
   * Sees every actor (the supervisor, jobs, conversations, backends and their health machines): the
   * Stately inspector (`--inspect`), or tests. Without it no actor is inspected at all.
   */
  inspect?: (event: InspectionEvent) => void;
  /**
   * The job supervisor crashed (a bug). Nothing can run jobs any more and XState leaves its pool
   * running, so the process should end and be restarted; jobs it left running end `interrupted` then.
   */
  onFatal?: (error: unknown) => void;
  /**
   * The embedded database's thread died: nothing can be stored in this process any more. The process
   * should shut down (as cleanly as it still can) and be restarted.
   */
  onStoreLost?: (error: StoreUnavailableError) => void;
  /** Sees, per job event, how long it waited from publish to commit (the write-ahead cost; for the bench). */
  onEventCommitted?: (waitedMs: number) => void;
}

/** Messages of history loaded per job; the config's turn and size limits then cut it. */
const HISTORY_MESSAGES = 80;
/** The reasoner sees this many recent turns (seed 001). */
const REASONER_TURNS = 10;
/** How long a stopping runtime waits for cancelled jobs to reach their terminal event. */
const CANCEL_WAIT_MS = 5_000;
/** A repeated `clientMsgId` of the same owner within this window gets the same `accepted` (DESIGN §4). */
const CLIENT_MSG_ID_WINDOW_MS = 24 * 60 * 60 * 1000;

type SupervisorActor = Actor<typeof supervisorMachine>;

/**
 * The composition root: builds the store, the backend actors, the tools and the job supervisor, and
 * provides the implementations to the machines. Transports see only the {@link Runtime} interface.
 */
export function createRuntime(config: Config, deps: RuntimeDeps): Runtime {
  const { log } = deps;
  /** The flight recorder: each job's transitions, journaled with its end. */
  const traces = new JobTraceRecorder();
  const now = deps.now ?? (() => new Date());
  // One registry per runtime: its gauges read `status` (declared below) at each scrape.
  const metrics = createMetrics({ status: () => status() });
  const backends = new BackendRegistry(config.backends, { ...deps, maxAnswerChars: config.limits.answerChars, metrics: metrics.backends });
  let opened: OpenedStore | undefined;
  let hub: JobEventHub | undefined;
  let supervisor: SupervisorActor | undefined;
  let sink: AnyActorRef | undefined;
  /** Closed at stop: the tools hold connections (the calendar's). */
  let tools: ReturnType<typeof createToolRunner> | undefined;
  let stopping = false;
  /** Chats with a `clientMsgId` being accepted, by owner and id: a repeat arriving meanwhile shares the outcome. */
  const accepting = new Map<string, Promise<Accepted>>();

  const status = (): StatusBody => {
    const context = supervisor?.getSnapshot().context;
    return {
      backends: backends.status(),
      jobs: context ? jobCounts(context) : { active: 0, pending: 0 },
    };
  };

  /**
   * Logs a store failure once, here where it is caught (with the job id when there is one and the
   * reason), and passes the coded error on: transports turn it into their own answer without logging it.
   */
  const logStoreFailure = async <T>(work: Promise<T>, what: string, jobId?: string): Promise<T> => {
    try {
      return await work;
    } catch (error) {
      log.error({ ...(jobId === undefined ? {} : { jobId }), reason: toErrorInfo(error).reason, err: error }, what);
      throw error;
    }
  };

  const requireStarted = () => {
    if (!opened || !hub || !supervisor) throw new Error('the runtime is not started');
    return { store: opened.store, hub, supervisor };
  };

  const start = async (): Promise<void> => {
    const prompts = await loadPrompts(deps.promptsDir ?? DEFAULT_PROMPTS_DIR, config.persona, { tools: offeredTools(config.tools) });
    // A first start creates the embedded database: a copy of a template, or initdb's seconds without one.
    const { url, dataDir } = config.database;
    const creating = !url && !dataDir.startsWith('memory://') && !hasPgliteDatabase(dataDir);
    const openingAt = performance.now();
    if (creating) log.info({ dataDir }, `creating the embedded database in ${dataDir} (first start)`);
    opened = await openStore(config.database, {
      // The same clock as the jobs': a draft's expiry is written and judged by it.
      now,
      onError: (error) => log.error({ err: error, reason: isStoreUnavailable(error) ? 'store_unavailable' : 'internal' }, 'store background work failed'),
      onTemplateError: (error) =>
        log.warn({ err: error, dataDir }, 'could not keep a template of the empty embedded database; creating this one in place'),
      onLost: (error) => {
        log.fatal({ err: error, reason: 'store_unavailable' }, 'the embedded database stopped');
        deps.onStoreLost?.(error);
      },
      traceOf: (jobId) => traces.take(jobId),
      onWriteCommitted: metrics.journalWriteCommitted,
    });
    if (creating) {
      const seconds = ((performance.now() - openingAt) / 1000).toFixed(1);
      log.info({ dataDir, ms: Math.round(performance.now() - openingAt) }, `embedded database created in ${seconds} s`);
    }
    if (opened.interruptedJobIds.length > 0) log.warn({ jobs: opened.interruptedJobIds.length }, 'ended jobs interrupted by a restart');
    const store = opened.store;
    const messages = prompts.messages(config.persona.locale);
    hub = new JobEventHub(
      store.journal,
      {
        onEnded: (jobId, outcome) => {
          metrics.jobEnded(outcome);
          log.info({ jobId, status: outcome.status, branch: outcome.branch, reason: outcome.reason, totalMs: outcome.totalMs }, 'job ended');
        },
        onAbandoned: (jobId) => cancelJob(jobId),
        errorMessage: (reason) => (reason === 'store_unavailable' ? messages.errors.storeUnavailable : messages.errors.internal),
        ...(deps.onEventCommitted ? { onCommitted: deps.onEventCommitted } : {}),
      },
      log,
    );
    const events = hub;
    sink = createActor(
      fromCallback<JobSinkEvent>(({ receive }) => {
        receive((event) => events.publish(event.jobId, event.payload, event.outcome));
      }),
      { id: 'job-events', ...(deps.inspect ? { inspect: deps.inspect } : {}) },
    ).start();

    tools = createToolRunner({ store, config, messages, now, log });
    const jobActors = createJobActors({
      store,
      backends,
      tools,
      describeStatus: (locale) => formatSystemStatus(status(), prompts.messages(locale), locale),
      draftTtlMs: config.tools.calendar?.draftTtlMs ?? DEFAULT_DRAFT_TTL_MS,
      historyMessages: HISTORY_MESSAGES,
      now,
    });
    const machine = supervisorMachine.provide({
      actions: {
        reportCrash: ({ event }) => {
          if (event.type !== 'pool.failed') return;
          // Our bug, not user data: the stack is what fixes it.
          log.error({ jobId: event.id.replace(/^job:/, ''), reason: 'internal', err: event.error }, 'a job crashed');
        },
      },
      actors: {
        pool: createActorPool(
          {
            // Every job records the states it went through (the flight recorder), inspected or not.
            job: traces.recording(
              jobMachine.provide({
              actors: jobActors,
              actions: {
                logFailure: ({ context, event }) => {
                  const error = (event as { error?: unknown }).error;
                  log.error({ jobId: context.jobId, reason: toErrorInfo(error).reason, err: error }, 'a job step failed');
                },
                logRound: ({ context, event }) => {
                  if ((event as { type?: string }).type !== 'react.round') return;
                  const { round, final, tools, modelMs, totalMs, ignoredCalls } = event as ReactRoundEvent;
                  // Tool names and timings only: never the model's or the user's text.
                  log.info({ jobId: context.jobId, round, final, tools, modelMs, totalMs, ignoredCalls }, 'react round');
                },
              },
              ...(deps.delays ? { delays: deps.delays } : {}),
              }),
            ),
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
          toolkit: createJobToolkit({ config, prompts, now, reasonerTurns: REASONER_TURNS }),
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

  const cancelJob = (jobId: string): void => {
    supervisor?.send({ type: 'cancel', jobId });
  };

  const submit = async (input: SubmitInput): Promise<Accepted> => {
    if (stopping) throw new SubmitRejected('shutting_down', 'the server is shutting down');
    const { store } = requireStarted();
    const mode = input.mode ?? 'auto';
    if (mode !== 'auto' && !Object.hasOwn(config.modes, mode)) {
      // The transport adds the modes it offers (a WebSocket client may not see every configured one).
      throw new SubmitRejected('unknown_mode', `unknown mode ${JSON.stringify(mode)}`);
    }
    if (input.text.trim().length === 0) throw new SubmitRejected('bad_request', 'the message is empty');
    // PostgreSQL text cannot hold U+0000: refused at the door, ids included, rather than failing the write.
    if (hasNul(input.text)) throw new SubmitRejected('bad_request', 'the message contains a NUL character (U+0000)');
    for (const [name, value] of [['conversationId', input.conversationId], ['clientMsgId', input.clientMsgId]] as const) {
      if (value !== undefined && hasNul(value)) throw new SubmitRejected('bad_request', `${name} contains a NUL character (U+0000)`);
    }
    if (input.text.length > config.limits.messageChars) {
      throw new SubmitRejected('too_large', `the message has ${input.text.length} characters, over the limit of ${config.limits.messageChars}`);
    }
    const clientMsgId = input.clientMsgId === undefined ? undefined : storableText(input.clientMsgId);
    if (clientMsgId === undefined) return accept(input, mode, undefined);
    // A repeat of a chat this owner sent in the last 24 h gets the same `accepted` and starts nothing: a
    // client can send again after a dropped connection without making a second message.
    const key = `${input.owner}\u0000${clientMsgId}`;
    const inFlight = accepting.get(key);
    if (inFlight !== undefined) return { ...(await inFlight), repeated: true };
    const accepted = (async (): Promise<Accepted> => {
      const since = new Date(now().getTime() - CLIENT_MSG_ID_WINDOW_MS);
      const earlier = await logStoreFailure(store.findJobByClientMsgId(input.owner, clientMsgId, since), 'could not look up a repeated chat');
      if (earlier !== null) return { ...earlier, repeated: true };
      return accept(input, mode, clientMsgId);
    })();
    accepting.set(key, accepted);
    try {
      return await accepted;
    } finally {
      accepting.delete(key);
    }
  };

  /** Stores the message and starts its job. */
  const accept = async (input: SubmitInput, mode: string, clientMsgId: string | undefined): Promise<Accepted> => {
    const { store, hub: events, supervisor: jobs } = requireStarted();
    if (input.conversationId !== undefined) {
      // Another owner's conversation, or one that does not exist, is not there for this caller.
      const owner = await logStoreFailure(store.conversationOwner(input.conversationId), 'could not look up a conversation');
      if (owner !== input.owner) throw new SubmitRejected('unknown_conversation', 'no such conversation');
    }
    // One owner's backlog is bounded; beyond it the client is told to wait for answers.
    if (events.liveCountOf(input.owner) >= config.limits.pendingJobsPerOwner) {
      throw new SubmitRejected('rate_limited', `${config.limits.pendingJobsPerOwner} messages are already waiting for answers; wait for some to finish`);
    }
    const text = storableText(input.text);
    const jobId = randomUUID();
    const conversationId = input.conversationId ?? randomUUID();
    const accepted = store.acceptJob({
      jobId,
      conversationId,
      source: input.source,
      mode,
      owner: input.owner,
      text,
      clientMsgId: clientMsgId ?? null,
      newConversation: input.conversationId === undefined,
      ...(input.externalUser === undefined ? {} : { externalUser: input.externalUser }),
      ...(input.stateless === true ? { stateless: true } : {}),
    });
    const spec = { jobId, owner: input.owner, conversationId, text, mode, ...(input.history === undefined ? {} : { history: input.history }) };
    if (input.stateless === true) {
      // Nothing to replay: the write is under way, and neither `accepted` nor the events wait for it.
      events.openStateless(jobId, input.owner, conversationId, accepted);
      jobs.send({ type: 'submit', spec });
      return { jobId, conversationId, repeated: false };
    }
    events.open(jobId, input.owner, conversationId, accepted);
    // The job starts while its message is being written: the classifier call overlaps the write. The
    // events of its start (`ack`, `processing`) join the accept in the same statement (the writer waits
    // for the end of this turn), and reach subscribers only once journaled, so never before `accepted`.
    jobs.send({ type: 'submit', spec });
    try {
      await accepted;
    } catch (error) {
      // Not durable, so it never existed: nobody hears of it again (the hub drops it), and it stops.
      jobs.send({ type: 'cancel', jobId });
      log.error({ jobId, reason: toErrorInfo(error).reason, err: error }, 'could not accept a chat');
      throw error;
    }
    return { jobId, conversationId, repeated: false };
  };

  /** A job's owner, live or from the store; undefined for an unknown job. */
  const ownerOf = async (jobId: string): Promise<string | undefined> => {
    const { store, hub: events } = requireStarted();
    return events.ownerOf(jobId) ?? (await store.getJob(jobId))?.owner;
  };

  const cancel = async (jobId: string, owner: string): Promise<boolean> => {
    requireStarted();
    if ((await logStoreFailure(ownerOf(jobId), 'could not look up a job', jobId)) !== owner) return false;
    cancelJob(jobId);
    return true;
  };

  const subscribe = async (
    jobId: string,
    owner: string,
    afterSeq: number,
    listener: (event: JobEvent) => void,
  ): Promise<Unsubscribe | null> => {
    const { hub: events } = requireStarted();
    if ((await logStoreFailure(ownerOf(jobId), 'could not look up a job', jobId)) !== owner) return null;
    let delivered = 0;
    const { unsubscribe, ended } = await logStoreFailure(
      events.subscribe(jobId, afterSeq, (event) => {
        delivered += 1;
        listener(event);
      }),
      'could not replay a job',
      jobId,
    );
    // Nothing after `afterSeq` will ever come: say so rather than hold a subscription that never ends.
    if (ended && delivered === 0) throw new SubmitRejected('bad_request', `the job has ended and has no events after seq ${afterSeq}`);
    return unsubscribe;
  };

  const health = async (): Promise<HealthBody> => {
    if (!opened) return { ok: false, reason: 'starting' };
    try {
      await opened.store.ping();
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: isStoreUnavailable(error) ? 'store_unavailable' : 'internal' };
    }
  };

  const stop: Runtime['stop'] = async (graceMs = 10_000, options = {}): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const graceEndsAt = Date.now() + graceMs;
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
    if (opened && options.beforeClose) {
      try {
        await options.beforeClose(graceEndsAt);
      } catch (error) {
        log.error({ err: error, reason: 'internal' }, 'handing over before the store closes failed');
      }
    }
    sink?.stop();
    backends.stop();
    await tools?.close();
    await opened?.close();
  };

  const synologyDeliveries = () => requireStarted().store.synologyDeliveries;

  const trace = async (jobId: string, owner: string): Promise<JobTraceBody | null> => {
    const { store } = requireStarted();
    const steps = traces.peek(jobId);
    if (steps !== undefined) {
      // Running here: the steps so far, for its owner only.
      if ((await logStoreFailure(ownerOf(jobId), 'could not look up a job', jobId)) !== owner) return null;
      return { jobId, status: 'running', transitions: toTimeline(steps) };
    }
    const stored = await logStoreFailure(store.getJobTrace(jobId), 'could not read a job trace', jobId);
    if (stored === null || stored.owner !== owner) return null;
    return { jobId, status: stored.status, transitions: toTimeline(stored.steps) };
  };

  return { config, status, health, start, submit, cancel, subscribe, stop, synologyDeliveries, trace, metrics };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
