import { assign, fromCallback, fromPromise, sendParent, setup, type AnyEventObject } from 'xstate';
import type { ChatMessage, ToolCall } from '../actors/inference/types.js';
import {
  finalRoundRequest,
  MAX_CALLS_PER_ROUND,
  MAX_TOOL_ROUNDS,
  mergeSources,
  refusedCall,
  searchQuery,
  toolRoundRequest,
  type Source,
} from '../jobs/react-requests.js';
import type { BackendReply } from './backend-protocol.js';
import type { InferInput, ToolInput, ToolOutcome } from './job-machine.js';

/** What the job gives the loop. */
export interface ReactInput {
  jobId: string;
  /** The reasoner backend (it has `tools: true`). */
  backend: string;
  /** System prompt (the `react` task), history and the user's message. */
  messages: ChatMessage[];
  /** The user's message: the query of a `search` call that names none. */
  text: string;
}

/** How the loop ended: its de-duplicated sources, or why it failed (the job's usual reasons). */
export type ReactOutput =
  | { ok: true; sources: Source[] }
  | { ok: false; reason: string; code: string; /** A tool's own sentence, when a tool failed. */ message: string | null };

/**
 * Told to the parent after each round, for its log line: the tools called (names only, never text),
 * how long the model took and the whole round took, and the calls a final round made and had ignored.
 */
export interface ReactRoundEvent {
  type: 'react.round';
  round: number;
  final: boolean;
  tools: string[];
  modelMs: number;
  totalMs: number;
  ignoredCalls: number;
}

interface ReactContext extends ReactInput {
  /** Rounds finished so far. */
  round: number;
  sources: Source[];
  /** The `search` calls of this round still to run, in order. */
  calls: ToolCall[];
  roundTools: string[];
  roundModelMs: number;
  roundIgnored: number;
  roundStartedAt: number;
  failure: Extract<ReactOutput, { ok: false }> | null;
}

const TOOL_FAILURES = new Set(['tool_timeout', 'tool_failed']);

const doneResult = (event: BackendReply) => (event.type === 'infer.done' ? event.result : { content: '', toolCalls: [], finishReason: null });

/**
 * The ReAct loop over the document `search` tool, run by the job's `route` branch for a reasoner with
 * `tools: true`: up to {@link MAX_TOOL_ROUNDS} tool rounds (a completion that may call `search`; each
 * call runs through the tool runner and its result joins the messages), then a final round with
 * `tool_choice: "none"` that streams. A tool round without calls is the answer. The parent receives the
 * backend's `infer.queued` and the answer's `infer.chunk` events as the requester protocol has them, and
 * a `react.round` per round; the output carries the sources (de-duplicated by id) or the failure.
 */
export const reactMachine = setup({
  types: {
    input: {} as ReactInput,
    context: {} as ReactContext,
    events: {} as BackendReply,
    output: {} as ReactOutput,
  },
  actors: {
    // Supplied by the runtime through `.provide()`: the job's own `infer` and `runTool`.
    infer: fromCallback<BackendReply, InferInput>(() => {
      throw new Error('infer is not provided');
    }),
    runTool: fromPromise<ToolOutcome, ToolInput>(async () => {
      throw new Error('runTool is not provided');
    }),
  },
  guards: {
    hasToolCalls: ({ event }) => doneResult(event).toolCalls.length > 0,
    hasCallsLeft: ({ context }) => context.calls.length > 0,
    hasRoundsLeft: ({ context }) => context.round + 1 < MAX_TOOL_ROUNDS,
    toolFailed: ({ event }) => {
      const output = (event as unknown as { output: ToolOutcome }).output;
      return !output.ok && TOOL_FAILURES.has(output.reason);
    },
  },
  actions: {
    /** Queue places and answer chunks go to the job unchanged: it already handles them. */
    forwardToParent: sendParent(({ event }) => event as AnyEventObject),
    /** A tool round answered without calling a tool: its content is the answer, sent as one chunk. */
    forwardAnswer: sendParent(({ event }): BackendReply => ({ type: 'infer.chunk', requestId: 'react', text: doneResult(event).content })),
    reportRound: sendParent(({ context }): ReactRoundEvent => ({
      type: 'react.round',
      round: context.round + 1,
      final: context.round >= MAX_TOOL_ROUNDS,
      tools: context.roundTools,
      modelMs: context.roundModelMs,
      totalMs: Math.round(performance.now() - context.roundStartedAt),
      ignoredCalls: context.roundIgnored,
    })),
    startRound: assign({ roundStartedAt: () => performance.now(), roundTools: [], roundModelMs: 0, roundIgnored: 0, calls: [] }),
    nextRound: assign({ round: ({ context }) => context.round + 1 }),
    /** The model's answer to a round: how long it took, and (final round) the calls it was not allowed. */
    assignModelTiming: assign(({ event }) => {
      const result = doneResult(event);
      return {
        roundModelMs: event.type === 'infer.done' ? Math.round(event.timing.totalMs) : 0,
        roundTools: result.toolCalls.map((call) => call.function.name),
        roundIgnored: result.toolCalls.length,
      };
    }),
    /**
     * The model's calls join the messages; the `search` calls (up to the round's limit) wait to be run,
     * every other call is answered at once with an error the model can read.
     */
    takeToolCalls: assign(({ context, event }) => {
      const result = doneResult(event);
      const messages: ChatMessage[] = [...context.messages, { role: 'assistant', content: result.content === '' ? null : result.content, tool_calls: result.toolCalls }];
      const calls: ToolCall[] = [];
      for (const call of result.toolCalls) {
        if (call.function.name !== 'search') messages.push(refusedCall(call, 'unknown_tool'));
        else if (calls.length >= MAX_CALLS_PER_ROUND) messages.push(refusedCall(call, 'too_many_calls'));
        else calls.push(call);
      }
      return {
        messages,
        calls,
        roundTools: result.toolCalls.map((call) => call.function.name),
        roundModelMs: event.type === 'infer.done' ? Math.round(event.timing.totalMs) : 0,
      };
    }),
    /** A search ran: its result (or the tool's sentence) answers the call, its documents join the sources. */
    answerCall: assign(({ context, event }) => {
      const output = (event as unknown as { output: ToolOutcome }).output;
      const [call, ...rest] = context.calls;
      if (call === undefined) return {};
      const content = output.ok ? output.payload : JSON.stringify({ error: output.reason, message: output.message });
      return {
        calls: rest,
        messages: [...context.messages, { role: 'tool', tool_call_id: call.id, content } satisfies ChatMessage],
        sources: output.ok ? mergeSources(context.sources, output.sources) : context.sources,
      };
    }),
    assignInferError: assign({
      failure: ({ event }) =>
        event.type === 'infer.error'
          ? { ok: false as const, reason: event.error.reason, code: event.error.code, message: null }
          : { ok: false as const, reason: 'internal', code: 'internal', message: null },
    }),
    assignToolError: assign({
      failure: ({ event }) => {
        const output = (event as unknown as { output: ToolOutcome }).output;
        return output.ok
          ? { ok: false as const, reason: 'tool_failed', code: 'tool_failed', message: null }
          : { ok: false as const, reason: output.reason, code: output.reason, message: output.message };
      },
    }),
    assignToolActorError: assign({ failure: { ok: false as const, reason: 'tool_failed', code: 'tool_failed', message: null } }),
  },
}).createMachine({
  id: 'react',
  context: ({ input }) => ({
    ...input,
    round: 0,
    sources: [],
    calls: [],
    roundTools: [],
    roundModelMs: 0,
    roundIgnored: 0,
    roundStartedAt: performance.now(),
    failure: null,
  }),
  on: { 'infer.queued': { actions: 'forwardToParent' } },
  initial: 'toolRound',
  states: {
    toolRound: {
      entry: 'startRound',
      invoke: {
        src: 'infer',
        input: ({ context }) => ({ backend: context.backend, kind: 'complete', priority: 'foreground', request: toolRoundRequest(context.messages) }),
      },
      on: {
        'infer.done': [
          { guard: 'hasToolCalls', target: 'searching', actions: 'takeToolCalls' },
          { target: 'answered', actions: ['forwardAnswer', 'assignModelTiming', 'reportRound'] },
        ],
        'infer.error': { target: 'failed', actions: 'assignInferError' },
      },
    },
    searching: {
      initial: 'nextCall',
      states: {
        nextCall: {
          always: [{ guard: 'hasCallsLeft', target: 'calling' }, { target: '#react.roundDone' }],
        },
        calling: {
          invoke: {
            id: 'runTool',
            src: 'runTool',
            input: ({ context }) => ({
              jobId: context.jobId,
              tool: 'document',
              operation: 'search',
              params: { query: context.calls[0] === undefined ? context.text : searchQuery(context.calls[0], context.text) },
            }),
            onDone: [
              { guard: 'toolFailed', target: '#react.failed', actions: 'assignToolError' },
              { target: 'nextCall', actions: 'answerCall' },
            ],
            onError: { target: '#react.failed', actions: 'assignToolActorError' },
          },
        },
      },
    },
    roundDone: {
      entry: 'reportRound',
      always: [
        { guard: 'hasRoundsLeft', target: 'toolRound', actions: 'nextRound' },
        { target: 'finalRound', actions: 'nextRound' },
      ],
    },
    // Calls made here are ignored: the loop ends with this round whatever the model asks.
    finalRound: {
      entry: 'startRound',
      invoke: {
        src: 'infer',
        input: ({ context }) => ({ backend: context.backend, kind: 'stream', priority: 'foreground', request: finalRoundRequest(context.messages) }),
      },
      on: {
        'infer.chunk': { actions: 'forwardToParent' },
        'infer.done': { target: 'answered', actions: ['assignModelTiming', 'reportRound'] },
        'infer.error': { target: 'failed', actions: 'assignInferError' },
      },
    },
    answered: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => context.failure ?? { ok: true, sources: context.sources },
});
