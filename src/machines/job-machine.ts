import { and, assign, fromCallback, fromPromise, sendTo, setup, type AnyActorRef } from 'xstate';
import type { ChatRequest, ChatResult } from '../actors/inference/types.js';
import { toErrorInfo } from '../errors.js';
import type { Classification } from '../jobs/classification.js';
import type { JobEventPayload } from '../jobs/job-event.js';
import { boundHistory, chatRequest, classifierRequest, describeNow, toolFormatRequest, type HistoryBounds, type HistoryTurn } from '../jobs/job-requests.js';
import type { BackendReply, Priority, RequestKind } from './backend-protocol.js';
import { reactMachine, type ReactInput, type ReactOutput, type ReactRoundEvent } from './react-machine.js';

/** The fixed sentences a job shows, by key; the runtime fills them from `prompts/messages.json`. */
export type JobMessageKey =
  | 'analysing'
  | 'generating'
  | 'switchingModel'
  | 'reasonerBusy'
  | 'usingTool'
  | 'phrasing'
  | 'checkingStatus'
  | 'noDraft'
  | 'draftCancelled'
  | 'confirmPrompt'
  | 'emptyAnswer'
  | 'backendUnavailable'
  | 'modelMissing'
  | 'answerTooLong'
  | 'storeUnavailable'
  | 'internalError';

/** What a job needs besides actors: prompts, rules and clocks, closed over by the runtime. */
export interface JobToolkit {
  systemPrompt(task: 'classifier' | 'reasoner' | 'tool-format' | 'react'): string;
  message(key: JobMessageKey): string;
  preRoute(text: string, hasPendingDraft: boolean, now: Date): Classification | null;
  parseClassification(raw: string): Classification;
  now(): Date;
  timeZone: string;
  locale: string;
  historyBounds: HistoryBounds;
  /** How many of the history's turns the reasoner sees (seed: 10). */
  reasonerTurns: number;
  /** The reasoner calls tools natively (`backends.NAME.tools`): `route` runs the ReAct loop. */
  reasonerTools?: boolean;
  /** The toolkit in the language of `text` (notices, errors, prompts); absent: this one for every message. */
  forMessage?(text: string): JobToolkit;
}

export interface JobInput {
  jobId: string;
  conversationId: string;
  text: string;
  /** `auto` or a mode name (already checked against the config). */
  mode: string;
  /** History the client sent (the OpenAI API); null: the stored conversation's. */
  givenHistory?: HistoryTurn[] | null;
  roles: { classifier: string; reasoner: string };
  /** The backend of `mode` when it is not `auto`. */
  modeBackend: string | null;
  fallbackToClassifier: boolean;
  /** Receives every job event (numbered, journaled and fanned out there). */
  sink: AnyActorRef;
  toolkit: JobToolkit;
  /** Told `job.finished` when the job has ended (the supervisor that started it). */
  supervisor: AnyActorRef;
}

/** The input of the `loadConversation` actor: `history` given by the client skips the store. */
export interface LoadConversationInput {
  conversationId: string;
  jobId: string;
  history: HistoryTurn[] | null;
}

/** Who changes a conversation's draft: the job (its writes are ordered) and the conversation. */
export interface DraftInput {
  jobId: string;
  conversationId: string;
}

/** A backend's health as the `readHealth` actor reports it (the `/status` entry's fields that matter here). */
export interface BackendHealth {
  state: 'up' | 'down' | 'unknown';
  load: 'idle' | 'normal' | 'busy' | 'very_busy';
  /** Why it is down. */
  reason?: string;
}

/** What the `loadConversation` actor returns. */
export interface ConversationContext {
  history: HistoryTurn[];
  draft: Record<string, unknown> | null;
}

/** Input of the `infer` actor: one request to a backend actor, as a requester. */
export interface InferInput {
  backend: string;
  request: ChatRequest;
  kind: RequestKind;
  priority: Priority;
}

/** A tool's outcome as the registry reports it. */
export type ToolOutcome =
  | { ok: true; data: unknown; summary: string; payload: string; sources: Array<{ id: string; title: string }> }
  | { ok: false; reason: string; message: string };

export interface ToolInput {
  /** For the log line of a tool that fails. */
  jobId: string;
  tool: string;
  operation: string;
  params: Record<string, unknown>;
}

/** How a job ended, for its record; sent to the sink with the terminal event. */
export interface JobOutcome {
  status: 'done' | 'error' | 'cancelled';
  branch: string | null;
  modelsUsed: string[];
  firstByteMs: number | null;
  totalMs: number;
  reason: string | null;
  /** With `done`: the answer, recorded in the conversation together with the `done` event. */
  answer: string | null;
}

/** What the sink receives. */
export type JobSinkEvent = { type: 'job.event'; jobId: string; payload: JobEventPayload; outcome?: JobOutcome };

/** Told to the parent (the supervisor) when the job has ended. */
export interface JobFinishedEvent {
  type: 'job.finished';
  jobId: string;
  conversationId: string;
}

type JobEvent = BackendReply | ReactRoundEvent | { type: 'cancel' };

interface JobContext extends JobInput {
  /** The classifier could not be reached: it is not asked again in this job (no fallback to it). */
  classifierDown: boolean;
  history: HistoryTurn[];
  draft: Record<string, unknown> | null;
  classification: Classification | null;
  answer: string;
  /** Text already streamed to the client (a failure after it must not splice another model in). */
  streamed: boolean;
  branch: string | null;
  modelsUsed: string[];
  startedAt: number;
  firstByteAt: number | null;
  error: { reason: string; message: string } | null;
  tool: ToolOutcome | null;
}

const TOOL_FAILURES = new Set(['tool_timeout', 'tool_failed']);

/** Reasons that say a backend cannot answer at all: asking it again in the same job only waits longer. */
const BACKEND_DOWN_REASONS = new Set(['backend_unavailable', 'backend_timeout', 'backend_disconnected', 'model_missing']);

/** The sentence a user reads for a backend failure, by its reason. */
function inferErrorMessage(reason: string, code: string): JobMessageKey {
  if (reason === 'model_missing') return 'modelMissing';
  if (reason === 'answer_too_long') return 'answerTooLong';
  return code === 'internal' ? 'internalError' : 'backendUnavailable';
}

function event(payload: JobEventPayload, context: JobContext): JobSinkEvent {
  return { type: 'job.event', jobId: context.jobId, payload };
}

function terminal(payload: JobEventPayload, context: JobContext, status: JobOutcome['status']): JobSinkEvent {
  return {
    type: 'job.event',
    jobId: context.jobId,
    payload,
    outcome: {
      status,
      branch: context.branch,
      modelsUsed: context.modelsUsed,
      firstByteMs: context.firstByteAt === null ? null : Math.round(context.firstByteAt - context.startedAt),
      totalMs: Math.round(performance.now() - context.startedAt),
      reason: status === 'error' ? (context.error?.reason ?? 'internal') : null,
      answer: status === 'done' ? context.answer : null,
    },
  };
}

const nowText = (context: JobContext): string => describeNow(context.toolkit.now(), context.toolkit.timeZone, context.toolkit.locale);

/** The ReAct loop's start: the `react` task prompt with the time, the reasoner's last turns, the message. */
function reactInput(context: JobContext): ReactInput {
  const { messages } = chatRequest({
    systemPrompt: context.toolkit.systemPrompt('react'),
    now: nowText(context),
    history: boundHistory(context.history, context.toolkit.historyBounds).slice(-context.toolkit.reasonerTurns),
    text: context.text,
  });
  return { jobId: context.jobId, backend: context.roles.reasoner, messages, text: context.text };
}

/** A streamed answer from `backend`: persona prompt with the time, the last turns, the message. */
function streamInput(context: JobContext, backend: string): InferInput {
  return {
    backend,
    kind: 'stream',
    priority: 'foreground',
    request: chatRequest({
      systemPrompt: context.toolkit.systemPrompt('reasoner'),
      now: nowText(context),
      history: boundHistory(context.history, context.toolkit.historyBounds).slice(-context.toolkit.reasonerTurns),
      text: context.text,
    }),
  };
}

/**
 * A stream that is the answer: chunks go out as they come (each restarts the heartbeat's wait), the end
 * completes the job, a failure ends it.
 */
const STREAM_EVENTS = {
  'infer.chunk': { target: '.waiting', actions: ['appendChunk', 'emitChunk'] },
  'infer.done': '#job.complete',
  'infer.error': { target: '#job.failed', actions: 'assignInferError' },
} as const;

/** While a stream runs: a `processing` heartbeat when no chunk came for `streamHeartbeat`. */
const STREAM_HEARTBEAT = {
  after: { streamHeartbeat: { target: 'waiting', reenter: true, actions: { type: 'emitProcessing', params: { key: 'generating' } } } },
} as const;

/**
 * One message, from `ack` to exactly one terminal state. `preRoute` answers known requests (calendar,
 * email, documents, status, yes/no to a draft) without the classifier; otherwise `classify` asks the small
 * model for an action and `branch` takes it: `direct`, `clarify`, `systemStatus`, `tools`, `route` (the
 * reasoner, falling back to the classifier only before the first streamed byte), or `modeStream` for a
 * direct chat mode. `complete` checks the answer; `done` carries it, and the runtime records it in the
 * conversation in the same write as the `done` event. `cancel` ends any state.
 */
export const jobMachine = setup({
  types: {
    input: {} as JobInput,
    context: {} as JobContext,
    events: {} as JobEvent,
  },
  actors: {
    // Supplied by the runtime through `.provide()`.
    loadConversation: fromPromise<ConversationContext, LoadConversationInput>(async () => {
      throw new Error('loadConversation is not provided');
    }),
    infer: fromCallback<BackendReply, InferInput>(() => {
      throw new Error('infer is not provided');
    }),
    runTool: fromPromise<ToolOutcome, ToolInput>(async () => {
      throw new Error('runTool is not provided');
    }),
    saveDraft: fromPromise<void, DraftInput & { draft: Record<string, unknown> }>(async () => {
      throw new Error('saveDraft is not provided');
    }),
    clearDraft: fromPromise<void, DraftInput>(async () => {
      throw new Error('clearDraft is not provided');
    }),
    describeStatus: fromPromise<string, { locale: string }>(async () => {
      throw new Error('describeStatus is not provided');
    }),
    readHealth: fromPromise<BackendHealth, { backend: string }>(async () => {
      throw new Error('readHealth is not provided');
    }),
    // The runtime provides it with the job's own `infer` and `runTool`.
    react: reactMachine,
  },
  delays: {
    classifyHeartbeat: 2_000,
    streamHeartbeat: 4_000,
  },
  guards: {
    isModeStream: ({ context }) => context.mode !== 'auto',
    isClassified: ({ context }) => context.classification !== null,
    isAction: ({ context }, params: { action: Classification['action'] }) => context.classification?.action === params.action,
    hasReadyResponse: ({ context }) =>
      context.classification?.action === 'direct' && (context.classification.response ?? '').trim().length > 0,
    /** The classifier failed in a way that says it cannot answer now (not a bad reply). */
    isBackendDown: ({ event }) => event.type === 'infer.error' && BACKEND_DOWN_REASONS.has(event.error.reason),
    /** The health read says the backend is down: it is not called. */
    isReportedDown: ({ event }) => (event as unknown as { output: BackendHealth }).output.state === 'down',
    /** The reasoner calls tools natively: `route` runs the ReAct loop instead of a plain stream. */
    usesTools: ({ context }) => context.toolkit.reasonerTools === true,
    reactFailed: ({ event }) => !(event as unknown as { output: ReactOutput }).output.ok,
    isReportedBusy: ({ event }) => {
      const { load } = (event as unknown as { output: BackendHealth }).output;
      return load === 'busy' || load === 'very_busy';
    },
    /**
     * Only before the first streamed byte, only when configured, and never to a classifier that could not
     * be reached: never splice two models into one answer.
     */
    canFallBack: ({ context }) => context.fallbackToClassifier && !context.streamed && !context.classifierDown,
    /** A model may not confirm a draft: only the user's own yes-words do (pre-route's `confirmDraft`). */
    isModelConfirmation: ({ context }) => context.classification?.action === 'tools' && context.classification.operation === 'create_confirmed',
    isConfirmWithoutDraft: ({ context }) => context.classification?.action === 'confirmDraft' && context.draft === null,
    toolFailed: ({ event }) => {
      const output = (event as unknown as { output: ToolOutcome }).output;
      return !output.ok && TOOL_FAILURES.has(output.reason);
    },
    toolRefused: ({ event }) => !(event as unknown as { output: ToolOutcome }).output.ok,
    isDraftCreation: ({ context }) => context.classification?.action === 'tools' && context.classification.operation === 'create_draft',
    isConfirmation: ({ context }) => context.classification?.action === 'confirmDraft',
    isEmptyAnswer: ({ context }) => context.answer.trim().length === 0,
    isEmptyToolResult: ({ event }) => {
      const output = (event as unknown as { output: ToolOutcome }).output;
      return output.ok && Array.isArray(output.data) && output.data.length === 0;
    },
  },
  actions: {
    emitAck: sendTo(({ context }) => context.sink, ({ context }) => event({ event: 'ack', data: {} }, context)),
    /** The backend's place in line, as it tells it (on arrival and when it moves to a place that matters). */
    emitQueued: sendTo(
      ({ context }) => context.sink,
      ({ context, event: e }) => event({ event: 'queued', data: { position: e.type === 'infer.queued' ? e.position : 0 } }, context),
    ),
    emitProcessing: sendTo(
      ({ context }) => context.sink,
      ({ context }, params: { key: JobMessageKey }) => event({ event: 'processing', data: { message: context.toolkit.message(params.key) } }, context),
    ),
    emitRewrite: sendTo(({ context }) => context.sink, ({ context }) => event({ event: 'rewrite', data: { content: context.text } }, context)),
    emitChunk: sendTo(
      ({ context }) => context.sink,
      ({ context, event: e }) => event({ event: 'result', data: { content: e.type === 'infer.chunk' ? e.text : '' } }, context),
    ),
    emitAnswer: sendTo(({ context }) => context.sink, ({ context }) => event({ event: 'result', data: { content: context.answer } }, context)),
    emitSources: sendTo(
      ({ context }) => context.sink,
      ({ context }) => event({ event: 'sources', data: { items: context.tool?.ok ? context.tool.sources : [] } }, context),
    ),
    /** The documents the ReAct loop's searches found, once, before `done`. */
    emitReactSources: sendTo(
      ({ context }) => context.sink,
      ({ context, event: e }) => {
        const output = (e as unknown as { output: ReactOutput }).output;
        return event({ event: 'sources', data: { items: output.ok ? output.sources : [] } }, context);
      },
    ),
    emitConfirm: sendTo(({ context }) => context.sink, ({ context }) => event({ event: 'confirm', data: { draft: context.draft ?? {} } }, context)),
    emitDone: sendTo(({ context }) => context.sink, ({ context }) => terminal({ event: 'done', data: {} }, context, 'done')),
    emitError: sendTo(
      ({ context }) => context.sink,
      ({ context }) =>
        terminal(
          {
            event: 'error',
            data: {
              message: context.error?.message ?? context.toolkit.message('internalError'),
              reason: context.error?.reason ?? 'internal',
            },
          },
          context,
          'error',
        ),
    ),
    emitCancelled: sendTo(({ context }) => context.sink, ({ context }) => terminal({ event: 'cancelled', data: {} }, context, 'cancelled')),
    reportFinished: sendTo(({ context }) => context.supervisor, ({ context }): JobFinishedEvent => ({ type: 'job.finished', jobId: context.jobId, conversationId: context.conversationId })),

    assignConversation: assign(({ event: e }) => {
      const output = (e as unknown as { output: ConversationContext }).output;
      return { history: output.history, draft: output.draft };
    }),
    preRoute: assign({
      classification: ({ context }) => context.toolkit.preRoute(context.text, context.draft !== null, context.toolkit.now()),
    }),
    assignClassification: assign({
      classification: ({ context, event: e }) =>
        context.toolkit.parseClassification(e.type === 'infer.done' ? e.result.content : ''),
    }),
    /** A classifier that failed leaves the message unclassified: answered directly by streaming. */
    assignUnclassified: assign({ classification: (): Classification => ({ action: 'direct' }) }),
    setBranch: assign({ branch: (_, params: { branch: string }) => params.branch }),
    useModel: assign({
      modelsUsed: ({ context }, params: { role: 'classifier' | 'reasoner' | 'mode' }) => {
        const name = params.role === 'mode' ? (context.modeBackend ?? '') : context.roles[params.role];
        return context.modelsUsed.includes(name) ? context.modelsUsed : [...context.modelsUsed, name];
      },
    }),
    appendChunk: assign(({ context, event: e }) => ({
      answer: context.answer + (e.type === 'infer.chunk' ? e.text : ''),
      streamed: true,
      firstByteAt: context.firstByteAt ?? performance.now(),
    })),
    /** A completion that was not streamed (tool phrasing) becomes the answer, cleaned of stray JSON. */
    assignCompletion: assign(({ context, event: e }) => {
      const content = e.type === 'infer.done' ? cleanCompletion(e.result) : '';
      const fallback = context.tool?.ok ? context.tool.summary : '';
      return { answer: content.length > 0 ? content : fallback };
    }),
    assignReadyResponse: assign(({ context }) => ({
      answer: context.classification?.action === 'direct' || context.classification?.action === 'clarify' ? (context.classification.response ?? '') : '',
    })),
    assignMessage: assign({ answer: ({ context }, params: { key: JobMessageKey }) => context.toolkit.message(params.key) }),
    assignToolOutcome: assign(({ event: e }) => ({ tool: (e as unknown as { output: ToolOutcome }).output })),
    assignToolMessage: assign(({ context }) => ({ answer: context.tool && !context.tool.ok ? context.tool.message : '' })),
    assignToolSummary: assign(({ context }) => ({ answer: context.tool?.ok ? context.tool.summary : '' })),
    assignDraftFromTool: assign(({ context }) => ({
      draft: context.tool?.ok && isRecord(context.tool.data) ? context.tool.data : {},
      answer: `${context.tool?.ok ? context.tool.summary : ''}\n\n${context.toolkit.message('confirmPrompt')}`,
    })),
    assignToolError: assign(({ context }) => ({
      error: context.tool && !context.tool.ok ? { reason: context.tool.reason, message: context.tool.message } : null,
    })),
    /** The reason as the backend decided it; the sentence is ours, in the persona's locale (no hosts, no paths). */
    assignInferError: assign({
      error: ({ context, event: e }) => {
        const reason = e.type === 'infer.error' ? e.error.reason : 'internal';
        return { reason, message: context.toolkit.message(inferErrorMessage(reason, e.type === 'infer.error' ? e.error.code : 'internal')) };
      },
    }),
    markClassifierDown: assign({ classifierDown: true }),
    /** The ReAct loop failed: a backend's reason as `infer.error` maps it, a tool's with its own sentence. */
    assignReactError: assign({
      error: ({ context, event: e }) => {
        const output = (e as unknown as { output: ReactOutput }).output;
        if (output.ok) return null;
        return { reason: output.reason, message: output.message ?? context.toolkit.message(inferErrorMessage(output.reason, output.code)) };
      },
    }),
    /**
     * One round of the ReAct loop, for the log: tool names and timings with the job id, never text. The
     * runtime provides the logger; the default does nothing.
     */
    logRound: (_: { context: JobContext; event: unknown }) => undefined,
    /**
     * An actor of the job failed (the store, a tool, the status text): the job ends `failed`, and the cause
     * is logged once, with the job id. The runtime provides the logger; the default does nothing.
     */
    logFailure: (_: { context: JobContext; event: unknown }) => undefined,
    /** The reasoner is reported down and nothing can stand in: its reason, unless the classifier's came first. */
    assignReportedDown: assign({
      error: ({ context, event: e }) => {
        if (context.error !== null) return context.error;
        const reason = (e as unknown as { output: BackendHealth }).output.reason ?? 'backend_unavailable';
        return { reason, message: context.toolkit.message(inferErrorMessage(reason, 'backend_unavailable')) };
      },
    }),
    /** A store that could not be used says so (`store_unavailable`); anything else is ours (`internal`). */
    assignActorError: assign({
      error: ({ context, event: e }) => {
        const reason = 'error' in e ? toErrorInfo(e.error).reason : 'internal';
        return { reason, message: context.toolkit.message(reason === 'store_unavailable' ? 'storeUnavailable' : 'internalError') };
      },
    }),
    /** The model asked to confirm a draft: the user is asked to say yes themselves (or told there is none). */
    assignConfirmationRefused: assign({
      answer: ({ context }) => context.toolkit.message(context.draft === null ? 'noDraft' : 'confirmPrompt'),
    }),
    assignToolActorError: assign({ error: ({ context }) => ({ reason: 'tool_failed', message: context.toolkit.message('internalError') }) }),
    assignEmptyAnswer: assign({ error: ({ context }) => ({ reason: 'empty_answer', message: context.toolkit.message('emptyAnswer') }) }),
    assignStatusText: assign({ answer: ({ event: e }) => (e as unknown as { output: string }).output }),
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    ...input,
    classifierDown: false,
    history: [],
    draft: null,
    classification: null,
    answer: '',
    streamed: false,
    branch: null,
    modelsUsed: [],
    startedAt: performance.now(),
    firstByteAt: null,
    error: null,
    tool: null,
  }),
  on: { cancel: '.cancelled', 'infer.queued': { actions: 'emitQueued' } },
  initial: 'ack',
  states: {
    ack: {
      entry: 'emitAck',
      invoke: {
        id: 'loadConversation',
        src: 'loadConversation',
        input: ({ context }) => ({ conversationId: context.conversationId, jobId: context.jobId, history: context.givenHistory ?? null }),
        onDone: { target: 'preRoute', actions: 'assignConversation' },
        onError: { target: 'failed', actions: ['assignActorError', 'logFailure'] },
      },
    },
    preRoute: {
      always: [
        { guard: 'isModeStream', target: 'modeStream' },
        { target: 'preRouted', actions: 'preRoute' },
      ],
    },
    preRouted: {
      always: [{ guard: 'isClassified', target: 'branch' }, { target: 'classify' }],
    },
    classify: {
      entry: { type: 'emitProcessing', params: { key: 'analysing' } },
      invoke: {
        src: 'infer',
        input: ({ context }) => ({
          backend: context.roles.classifier,
          kind: 'complete',
          priority: 'foreground',
          request: classifierRequest({
            systemPrompt: context.toolkit.systemPrompt('classifier'),
            now: nowText(context),
            history: boundHistory(context.history, context.toolkit.historyBounds),
            text: context.text,
            hasPendingDraft: context.draft !== null,
          }),
        }),
      },
      initial: 'waiting',
      states: {
        waiting: {
          after: { classifyHeartbeat: { target: 'waiting', reenter: true, actions: { type: 'emitProcessing', params: { key: 'analysing' } } } },
        },
      },
      on: {
        'infer.done': { target: 'branch', actions: ['assignClassification', { type: 'useModel', params: { role: 'classifier' } }] },
        // A classifier that cannot answer is not asked again (as a stream): the reasoner answers, when it can.
        'infer.error': [
          { guard: 'isBackendDown', target: 'route', actions: ['assignInferError', 'markClassifierDown'] },
          { target: 'branch', actions: 'assignUnclassified' },
        ],
      },
    },
    branch: {
      always: [
        { guard: { type: 'isAction', params: { action: 'route' } }, target: 'route' },
        { guard: { type: 'isAction', params: { action: 'clarify' } }, target: 'clarify' },
        { guard: { type: 'isAction', params: { action: 'systemStatus' } }, target: 'systemStatus' },
        { guard: { type: 'isAction', params: { action: 'tools' } }, target: 'tools' },
        { guard: { type: 'isAction', params: { action: 'confirmDraft' } }, target: 'tools' },
        { guard: { type: 'isAction', params: { action: 'cancelDraft' } }, target: 'cancelDraft' },
        { target: 'direct' },
      ],
    },
    direct: {
      entry: { type: 'setBranch', params: { branch: 'direct' } },
      initial: 'choose',
      states: {
        choose: { always: [{ guard: 'hasReadyResponse', target: 'ready' }, { target: 'streaming' }] },
        ready: { entry: ['assignReadyResponse', 'emitAnswer'], always: '#job.complete' },
        streaming: {
          entry: [{ type: 'emitProcessing', params: { key: 'generating' } }, { type: 'useModel', params: { role: 'classifier' } }],
          invoke: {
            src: 'infer',
            input: ({ context }) => streamInput(context, context.roles.classifier),
          },
          initial: 'waiting',
          states: { waiting: STREAM_HEARTBEAT },
          on: STREAM_EVENTS,
        },
      },
    },
    clarify: {
      entry: [{ type: 'setBranch', params: { branch: 'clarify' } }, 'assignReadyResponse', 'emitAnswer'],
      always: 'complete',
    },
    systemStatus: {
      entry: [{ type: 'setBranch', params: { branch: 'systemStatus' } }, { type: 'emitProcessing', params: { key: 'checkingStatus' } }],
      invoke: {
        id: 'describeStatus',
        src: 'describeStatus',
        input: ({ context }) => ({ locale: context.toolkit.locale }),
        onDone: { target: 'complete', actions: ['assignStatusText', 'emitAnswer'] },
        onError: { target: 'failed', actions: ['assignActorError', 'logFailure'] },
      },
    },
    cancelDraft: {
      entry: { type: 'setBranch', params: { branch: 'tools' } },
      invoke: {
        id: 'clearDraft',
        src: 'clearDraft',
        input: ({ context }) => ({ jobId: context.jobId, conversationId: context.conversationId }),
        onDone: { target: 'complete', actions: [{ type: 'assignMessage', params: { key: 'draftCancelled' } }, 'emitAnswer'] },
        onError: { target: 'failed', actions: ['assignActorError', 'logFailure'] },
      },
    },
    tools: {
      entry: { type: 'setBranch', params: { branch: 'tools' } },
      initial: 'choose',
      states: {
        choose: {
          always: [
            { guard: 'isModelConfirmation', target: 'answered', actions: 'assignConfirmationRefused' },
            { guard: 'isConfirmWithoutDraft', target: 'answered', actions: { type: 'assignMessage', params: { key: 'noDraft' } } },
            { target: 'running' },
          ],
        },
        running: {
          entry: { type: 'emitProcessing', params: { key: 'usingTool' } },
          invoke: {
            id: 'runTool',
            src: 'runTool',
            input: ({ context }) => {
              const c = context.classification;
              // The user's yes writes the draft they were shown, whatever a model might say.
              if (c?.action === 'confirmDraft') return { jobId: context.jobId, tool: 'calendar', operation: 'create_confirmed', params: context.draft ?? {} };
              const tool = c?.action === 'tools' ? c : { tool: '', operation: '', params: {} };
              return { jobId: context.jobId, tool: tool.tool, operation: tool.operation, params: tool.params };
            },
            onDone: [
              { guard: 'toolFailed', target: '#job.failed', actions: ['assignToolOutcome', 'assignToolError'] },
              { guard: 'toolRefused', target: 'answered', actions: ['assignToolOutcome', 'assignToolMessage'] },
              { guard: 'isDraftCreation', target: 'savingDraft', actions: ['assignToolOutcome', 'assignDraftFromTool'] },
              { guard: 'isConfirmation', target: 'clearingDraft', actions: ['assignToolOutcome', 'assignToolSummary'] },
              // Nothing found: the summary says so; there is nothing for a model to phrase.
              { guard: 'isEmptyToolResult', target: 'answered', actions: ['assignToolOutcome', 'assignToolSummary'] },
              { target: 'phrasing', actions: ['assignToolOutcome', 'emitSources'] },
            ],
            onError: { target: '#job.failed', actions: ['assignToolActorError', 'logFailure'] },
          },
        },
        savingDraft: {
          invoke: {
            id: 'saveDraft',
            src: 'saveDraft',
            input: ({ context }) => ({ jobId: context.jobId, conversationId: context.conversationId, draft: context.draft ?? {} }),
            onDone: { target: 'answered', actions: 'emitConfirm' },
            onError: { target: '#job.failed', actions: ['assignActorError', 'logFailure'] },
          },
        },
        clearingDraft: {
          invoke: {
            id: 'clearDraft',
            src: 'clearDraft',
            input: ({ context }) => ({ jobId: context.jobId, conversationId: context.conversationId }),
            onDone: 'answered',
            onError: { target: '#job.failed', actions: ['assignActorError', 'logFailure'] },
          },
        },
        phrasing: {
          entry: [{ type: 'emitProcessing', params: { key: 'phrasing' } }, { type: 'useModel', params: { role: 'classifier' } }],
          invoke: {
            src: 'infer',
            input: ({ context }) => ({
              backend: context.roles.classifier,
              kind: 'complete',
              priority: 'foreground',
              request: toolFormatRequest({
                systemPrompt: context.toolkit.systemPrompt('tool-format'),
                now: nowText(context),
                text: context.text,
                payload: context.tool?.ok ? context.tool.payload : '',
              }),
            }),
          },
          on: {
            'infer.done': { target: 'answered', actions: 'assignCompletion' },
            // The plain summary is a fine answer when the classifier cannot phrase it.
            'infer.error': { target: 'answered', actions: 'assignToolSummary' },
          },
        },
        answered: { entry: 'emitAnswer', always: '#job.complete' },
      },
    },
    route: {
      entry: [{ type: 'setBranch', params: { branch: 'route' } }, 'emitRewrite'],
      initial: 'checkHealth',
      states: {
        // A reasoner known to be down is not called; a busy one gets a notice first.
        checkHealth: {
          invoke: {
            id: 'readHealth',
            src: 'readHealth',
            input: ({ context }) => ({ backend: context.roles.reasoner }),
            onDone: [
              {
                guard: and(['isReportedDown', 'canFallBack']),
                target: 'fallback',
                actions: { type: 'emitProcessing', params: { key: 'switchingModel' } },
              },
              { guard: 'isReportedDown', target: '#job.failed', actions: 'assignReportedDown' },
              { guard: and(['isReportedBusy', 'usesTools']), target: 'react', actions: { type: 'emitProcessing', params: { key: 'reasonerBusy' } } },
              { guard: 'isReportedBusy', target: 'streaming', actions: { type: 'emitProcessing', params: { key: 'reasonerBusy' } } },
              { guard: 'usesTools', target: 'react' },
              { target: 'streaming' },
            ],
            // Health that cannot be read is no reason not to try.
            onError: [{ guard: 'usesTools', target: 'react' }, { target: 'streaming' }],
          },
        },
        // The ReAct loop (`react-machine.ts`): searches, then the answer streams; a failure ends the job.
        react: {
          entry: [{ type: 'emitProcessing', params: { key: 'generating' } }, { type: 'useModel', params: { role: 'reasoner' } }],
          invoke: {
            id: 'react',
            src: 'react',
            input: ({ context }) => reactInput(context),
            onDone: [
              { guard: 'reactFailed', target: '#job.failed', actions: 'assignReactError' },
              { target: '#job.complete', actions: 'emitReactSources' },
            ],
            onError: { target: '#job.failed', actions: ['assignActorError', 'logFailure'] },
          },
          initial: 'waiting',
          states: { waiting: STREAM_HEARTBEAT },
          on: {
            'infer.chunk': { target: '.waiting', actions: ['appendChunk', 'emitChunk'] },
            'react.round': { actions: 'logRound' },
          },
        },
        streaming: {
          entry: [{ type: 'emitProcessing', params: { key: 'generating' } }, { type: 'useModel', params: { role: 'reasoner' } }],
          invoke: {
            src: 'infer',
            input: ({ context }) => streamInput(context, context.roles.reasoner),
          },
          initial: 'waiting',
          states: { waiting: STREAM_HEARTBEAT },
          on: {
            'infer.chunk': { target: '.waiting', actions: ['appendChunk', 'emitChunk'] },
            'infer.done': '#job.complete',
            'infer.error': [
              { guard: 'canFallBack', target: 'fallback', actions: { type: 'emitProcessing', params: { key: 'switchingModel' } } },
              { target: '#job.failed', actions: 'assignInferError' },
            ],
          },
        },
        fallback: {
          entry: { type: 'useModel', params: { role: 'classifier' } },
          invoke: {
            src: 'infer',
            input: ({ context }) => streamInput(context, context.roles.classifier),
          },
          initial: 'waiting',
          states: { waiting: STREAM_HEARTBEAT },
          on: STREAM_EVENTS,
        },
      },
    },
    modeStream: {
      entry: [{ type: 'setBranch', params: { branch: 'mode' } }, { type: 'useModel', params: { role: 'mode' } }],
      invoke: {
        src: 'infer',
        input: ({ context }) => streamInput(context, context.modeBackend ?? context.roles.classifier),
      },
      initial: 'waiting',
      states: { waiting: STREAM_HEARTBEAT },
      on: STREAM_EVENTS,
    },
    complete: {
      always: [{ guard: 'isEmptyAnswer', target: 'failed', actions: 'assignEmptyAnswer' }, { target: 'done' }],
    },
    done: { type: 'final', entry: ['emitDone', 'reportFinished'] },
    failed: { type: 'final', entry: ['emitError', 'reportFinished'] },
    cancelled: { type: 'final', entry: ['emitCancelled', 'reportFinished'] },
  },
});

/** A model answer without code fences, or its `response` when it answered in the classifier's JSON anyway. */
function cleanCompletion(result: ChatResult): string {
  const text = result.content.replace(/```[a-z]*\n?/gi, '').replace(/```/g, '').trim();
  if (text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (isRecord(parsed) && typeof parsed.response === 'string') return parsed.response.trim();
    } catch {
      // Not JSON after all: the text is the answer.
    }
  }
  return text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
