import { randomUUID } from 'node:crypto';
import type { JournalEvent } from '../../src/actors/store/job-journal.js';
import type { AcceptJobInput, Store } from '../../src/actors/store/store.js';

/** A fresh id with a readable prefix: tests share one database per dialect and file. */
export const id = (prefix: string): string => `${prefix}-${randomUUID()}`;

/** A journal event at `seq` (a `result` chunk unless named). */
export function event(seq: number, name = 'result', data?: Record<string, unknown>, at = new Date()): JournalEvent {
  return { seq, event: name, data: data ?? { content: `chunk ${seq}` }, at: at.toISOString() };
}

/** Accepts a job with the usual test values; resolves with its input once committed. */
export async function accept(store: Store, overrides: Partial<AcceptJobInput> = {}): Promise<AcceptJobInput> {
  const input: AcceptJobInput = {
    jobId: id('job'),
    conversationId: id('conv'),
    source: 'ws',
    mode: 'auto',
    owner: 'anonymous',
    text: 'hello',
    newConversation: overrides.conversationId === undefined,
    ...overrides,
  };
  await store.acceptJob(input);
  return input;
}

/** Ends an accepted job with `done` at `seq`, recording `answer` with it. */
export function answer(store: Store, job: Pick<AcceptJobInput, 'jobId' | 'conversationId'>, content: string, seq = 1): Promise<void> {
  return store.journal.append(job.jobId, event(seq, 'done', {}), {
    outcome: { status: 'done', branch: 'direct', modelsUsed: ['small'], totalMs: 12 },
    answer: { conversationId: job.conversationId, content },
  });
}
