import type { ChatMessage, ChatRequest } from '../actors/inference/types.js';

/** A turn of stored conversation history. */
export interface HistoryTurn {
  role: 'user' | 'assistant';
  content: string;
}

/** Bounds on the history assembled for a model (DESIGN §3 limits). */
export interface HistoryBounds {
  turns: number;
  totalChars: number;
}

/** The most recent turns that fit both bounds, oldest first. */
export function boundHistory(history: readonly HistoryTurn[], bounds: HistoryBounds): HistoryTurn[] {
  const kept: HistoryTurn[] = [];
  let chars = 0;
  for (let i = history.length - 1; i >= 0 && kept.length < bounds.turns; i--) {
    const turn = history[i];
    if (!turn) continue;
    if (chars + turn.content.length > bounds.totalChars) break;
    chars += turn.content.length;
    kept.push(turn);
  }
  return kept.reverse();
}

/** The current time as models are told it: local date, time and weekday, with the zone. */
export function describeNow(now: Date, timeZone: string, locale: string): string {
  const { long, isoDate } = formattersFor(timeZone, locale);
  return `${long.format(now)} (${isoDate.format(now)}, ${timeZone})`;
}

/** Building an `Intl.DateTimeFormat` costs ~0.2 ms; a gateway uses one or two time zones, so keep them. */
const formatters = new Map<string, { long: Intl.DateTimeFormat; isoDate: Intl.DateTimeFormat }>();

function formattersFor(timeZone: string, locale: string) {
  const key = `${timeZone}\u0000${locale}`;
  let found = formatters.get(key);
  if (found === undefined) {
    found = {
      long: new Intl.DateTimeFormat(locale === 'ko' ? 'ko-KR' : 'en-GB', { timeZone, dateStyle: 'full', timeStyle: 'short' }),
      isoDate: new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }),
    };
    if (formatters.size >= 64) formatters.clear();
    formatters.set(key, found);
  }
  return found;
}

/**
 * The classifier's one non-streaming request: its system prompt, then one user message that carries the
 * current time, the recent history and the message, each under a label the prompt explains.
 */
export function classifierRequest(args: {
  systemPrompt: string;
  now: string;
  history: readonly HistoryTurn[];
  text: string;
  hasPendingDraft: boolean;
}): ChatRequest {
  const parts = [`[now]\n${args.now}`];
  if (args.history.length > 0) {
    parts.push(`[history]\n${args.history.map((turn) => `${turn.role}: ${turn.content}`).join('\n')}`);
  }
  if (args.hasPendingDraft) parts.push('[pending_draft]\nyes');
  parts.push(`[message]\n${args.text}`);
  return {
    messages: [
      { role: 'system', content: args.systemPrompt },
      { role: 'user', content: parts.join('\n\n') },
    ],
    temperature: 0.2,
  };
}

/** A streamed chat answer: system prompt with the current time, the last turns, then the message. */
export function chatRequest(args: { systemPrompt: string; now: string; history: readonly HistoryTurn[]; text: string }): ChatRequest {
  const messages: ChatMessage[] = [{ role: 'system', content: `${args.systemPrompt}\n\n[now] ${args.now}` }];
  for (const turn of args.history) messages.push({ role: turn.role, content: turn.content });
  messages.push({ role: 'user', content: args.text });
  return { messages };
}

/** The classifier phrases a tool result for the user. */
export function toolFormatRequest(args: { systemPrompt: string; now: string; text: string; payload: string }): ChatRequest {
  return {
    messages: [
      { role: 'system', content: `${args.systemPrompt}\n\n[now] ${args.now}` },
      { role: 'user', content: `[request]\n${args.text}\n\n[tool_result]\n${args.payload}` },
    ],
    temperature: 0.2,
  };
}
