import { randomUUID } from 'node:crypto';
import { fromCallback, fromPromise } from 'xstate';
import type { Store } from '../actors/store/store.js';
import { historyBefore } from '../jobs/history-before.js';
import type { BackendReply, InferCancelEvent, InferRequestEvent } from '../machines/backend-protocol.js';
import type { BackendHealth, ConversationContext, DraftInput, InferInput, LoadConversationInput, ToolInput, ToolOutcome } from '../machines/job-machine.js';
import { reactMachine } from '../machines/react-machine.js';
import type { BackendRegistry } from './backend-registry.js';

/** Runs one tool call; never throws (failures are outcomes with a sanitized reason). */
export interface ToolRunner {
  run(input: ToolInput, signal: AbortSignal): Promise<ToolOutcome>;
}

export interface JobActorsDeps {
  store: Store;
  backends: BackendRegistry;
  tools: ToolRunner;
  /** A readable system status in `locale`, measured now. */
  describeStatus(locale: string): string;
  /** How long a calendar draft waits for its yes/no. */
  draftTtlMs: number;
  /** Messages of history loaded per job (the bounds then cut it further). */
  historyMessages: number;
  now: () => Date;
}

/**
 * The side-effecting actors of the job machine, closed over the store, the backends and the tools.
 * Each does its I/O with the actor's abort signal; leaving the state that invoked it cancels it.
 */
export function createJobActors(deps: JobActorsDeps) {
  const { store, backends, tools } = deps;

  /** The conversation before this job's message (see `historyBefore`), and its draft. */
  const loadConversation = fromPromise<ConversationContext, LoadConversationInput>(async ({ input }) => {
    // A stateless request (the OpenAI API) brings its history and has no stored draft.
    if (input.history !== null) return { history: input.history, draft: null };
    const [messages, draft] = await Promise.all([
      store.recentMessages(input.conversationId, deps.historyMessages),
      store.loadDraft(input.conversationId),
    ]);
    return { history: historyBefore(messages, input.jobId), draft };
  });

  /**
   * One request to a backend actor, as a requester: every reply is passed on to the job. When the job
   * leaves the state that invoked it, the cleanup cancels the request (queued or running).
   */
  const infer = fromCallback<BackendReply, InferInput>(({ input, self, sendBack, receive }) => {
    const backend = backends.get(input.backend);
    const requestId = randomUUID();
    if (!backend) {
      sendBack({
        type: 'infer.error',
        requestId,
        error: { code: 'backend_unavailable', reason: 'backend_unavailable', retryable: false, message: 'no such backend' },
      } satisfies BackendReply);
      return;
    }
    let finished = false;
    receive((reply) => {
      if (reply.type === 'infer.done' || reply.type === 'infer.error' || reply.type === 'infer.cancelled') finished = true;
      sendBack(reply);
    });
    backend.send({
      type: 'infer.request',
      requestId,
      priority: input.priority,
      kind: input.kind,
      request: input.request,
      replyTo: self,
    } satisfies InferRequestEvent);
    return () => {
      if (!finished) backend.send({ type: 'infer.cancel', requestId } satisfies InferCancelEvent);
    };
  });

  const runTool = fromPromise<ToolOutcome, ToolInput>(({ input, signal }) => tools.run(input, signal));

  const saveDraft = fromPromise<void, DraftInput & { draft: Record<string, unknown> }>(({ input }) =>
    store.saveDraft(input.jobId, input.conversationId, input.draft, new Date(deps.now().getTime() + deps.draftTtlMs)),
  );

  const clearDraft = fromPromise<void, DraftInput>(({ input }) => store.clearDraft(input.jobId, input.conversationId));

  const describeStatus = fromPromise<string, { locale: string }>(async ({ input }) => deps.describeStatus(input.locale));

  /** The backend's liveness and load as they are now: the job branches on this read, not on live state. */
  const readHealth = fromPromise<BackendHealth, { backend: string }>(async ({ input }) => {
    const status = backends.status()[input.backend];
    if (status === undefined) return { state: 'down', load: 'idle', reason: 'backend_unavailable' };
    return { state: status.state, load: status.load, ...(status.reason === undefined ? {} : { reason: status.reason }) };
  });

  /** The ReAct loop, with the same requester and tool runner as the job. */
  const react = reactMachine.provide({ actors: { infer, runTool } });

  return { loadConversation, infer, runTool, saveDraft, clearDraft, describeStatus, readHealth, react };
}
