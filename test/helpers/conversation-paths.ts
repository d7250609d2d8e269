import { createActor, fromCallback, type SnapshotFrom } from 'xstate';
import { conversationMachine, type ConversationEvent } from '../../src/machines/conversation-machine.js';
import { transitionCover, type CoverWalk } from './transition-cover.js';

/** The conversation machine's generated paths (driven by `test/model-machines.test.ts`). */

type ConversationSnapshot = SnapshotFrom<typeof conversationMachine>;
const noop = (): void => {};
/** Receives what the conversation tells its supervisor. */
export const conversationSupervisor = createActor(fromCallback(noop)).start();
export const conversationInput = { conversationId: 'c1', supervisor: conversationSupervisor };

/** Up to three jobs arrive; the running one finishes; a waiting one is cancelled. */
function anyEvent(snapshot: ConversationSnapshot): ConversationEvent[] {
  const { running, waiting } = snapshot.context;
  const ids = new Set([running, ...waiting.map((spec) => spec.jobId)]);
  const events: ConversationEvent[] = [];
  const next = ['j1', 'j2', 'j3'].find((id) => !ids.has(id));
  if (next && ids.size < 3) events.push({ type: 'conversation.enqueue', spec: { jobId: next, owner: 'o', conversationId: 'c1', text: 'x', mode: 'auto' } });
  if (running !== null) events.push({ type: 'conversation.jobFinished', jobId: running });
  for (const spec of waiting) events.push({ type: 'conversation.cancel', jobId: spec.jobId });
  return events;
}

/** Paths that take every transition of the conversation machine. */
export function conversationCoverWalks(): CoverWalk[] {
  return transitionCover(conversationMachine, {
    input: conversationInput,
    events: anyEvent as never,
    key: (s) => JSON.stringify([s.value, s.context.running, s.context.waiting.map((spec: { jobId: string }) => spec.jobId)]),
  });
}
