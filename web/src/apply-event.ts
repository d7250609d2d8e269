import type { AnswerMessage } from './conversation-store.js';
import { TERMINAL_EVENTS, type EventFrame } from './protocol.js';
import { errorSentence, type Strings } from './strings.js';

/**
 * Applies one job event to its answer, in place; false when it was already applied (a replay after a
 * resubscribe starts after the last seq seen, but a live event may still cross it).
 */
export function applyEvent(answer: AnswerMessage, frame: EventFrame, strings: Strings): boolean {
  if (frame.seq <= answer.lastSeq) return false;
  answer.lastSeq = frame.seq;
  const { data } = frame;
  switch (frame.event) {
    case 'queued':
      answer.notice = strings.queued(typeof data.position === 'number' ? data.position : null);
      break;
    case 'processing':
      // A notice while waiting; once the answer streams, the answer speaks for itself.
      if (answer.text === '' && typeof data.message === 'string') answer.notice = data.message;
      break;
    case 'result':
      if (typeof data.content === 'string') answer.text += data.content;
      answer.notice = null;
      break;
    case 'sources':
      if (Array.isArray(data.items)) {
        answer.sources = data.items.filter(
          (item): item is { id: string; title: string } => typeof item === 'object' && item !== null && typeof item.title === 'string',
        );
      }
      break;
    case 'confirm':
      if (typeof data.draft === 'object' && data.draft !== null) answer.draft = data.draft as Record<string, unknown>;
      break;
    case 'done':
      answer.state = 'done';
      answer.notice = null;
      break;
    case 'error':
      answer.state = 'error';
      answer.notice = null;
      answer.error = errorSentence(strings, data.reason, data.message);
      break;
    case 'cancelled':
      answer.state = 'cancelled';
      answer.notice = null;
      break;
    default:
      // `ack`, `rewrite` and any event added later: nothing to show.
      break;
  }
  // Any other event comes before the terminal one: the job is live (also after a resubscribe that was
  // first answered `unknown_job` and then found it after all).
  if (!TERMINAL_EVENTS.has(frame.event) && answer.state !== 'running') {
    answer.state = 'running';
    answer.error = null;
  }
  return true;
}
