import type { HistoryTurn } from './job-requests.js';

/** A stored message as history is built from it. */
export interface HistoryMessage {
  role: 'user' | 'assistant';
  content: string;
  /** The job that received (user) or answered (assistant) it; null for messages of no job. */
  jobId: string | null;
}

/**
 * The conversation as job `jobId` should see it, from messages in the order they were stored: every
 * question accepted before its own, each followed by its answer — never a message sent after it.
 *
 * Stored order is not enough: two messages sent at once are both stored before either is answered
 * (`u1 u2 a1 a2`), so the first job would see the second question and later jobs would see two
 * questions, then two answers. Answers are therefore paired with their questions by job, and the list
 * stops at the job's own question (or takes everything when that is not stored yet: whatever is
 * stored was then accepted before it, since accepts commit in order).
 */
export function historyBefore(messages: readonly HistoryMessage[], jobId: string): HistoryTurn[] {
  const own = messages.findIndex((message) => message.role === 'user' && message.jobId === jobId);
  const earlier = own < 0 ? messages : messages.slice(0, own);
  const answers = new Map<string, HistoryMessage>();
  for (const message of messages) {
    if (message.role === 'assistant' && message.jobId !== null && message.jobId !== jobId) answers.set(message.jobId, message);
  }
  const asked = new Set(earlier.filter((message) => message.role === 'user' && message.jobId !== null).map((message) => message.jobId));
  const history: HistoryTurn[] = [];
  for (const message of earlier) {
    if (message.role === 'user') {
      history.push({ role: 'user', content: message.content });
      const answer = message.jobId === null ? undefined : answers.get(message.jobId);
      if (answer !== undefined) history.push({ role: 'assistant', content: answer.content });
    } else if (message.jobId === null || !asked.has(message.jobId)) {
      // An answer whose question is out of the window (or of no job) stays where it was stored.
      if (message.jobId !== jobId) history.push({ role: 'assistant', content: message.content });
    }
  }
  return history;
}
