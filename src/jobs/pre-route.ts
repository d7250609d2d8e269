/**
 * Keyword pre-routing (DESIGN §6, seed 001): common requests — calendar today / tomorrow / this week,
 * an email search, a document search, the system status, yes/no to a pending draft — are recognised
 * by rules kept as data (`prompts/pre-route.json`) and skip the classifier: faster, and small
 * classifier models get these wrong more often than a word list does. Anything ambiguous returns
 * null and goes to the classifier, which is the safe default.
 */
import type { PreRouteRules } from '../prompts/pre-route-rules.js';
import type { Classification } from './classification.js';

/** Calendar days are counted in this zone unless the caller says otherwise. */
export const DEFAULT_TIME_ZONE = 'Asia/Seoul';

/** What pre-routing needs besides the text. */
export interface PreRouteContext {
  now: Date;
  /** IANA zone for "today" and "this week" (default {@link DEFAULT_TIME_ZONE}). */
  timeZone?: string;
  /** A draft waits for yes/no in this conversation. */
  hasPendingDraft: boolean;
}

type Domain = 'calendar' | 'email' | 'document' | 'systemStatus';

/**
 * The classification for `text` when a rule decides it, else null. Pure: the same text, rules and
 * context always give the same answer.
 */
export function preRoute(text: string, rules: PreRouteRules, ctx: PreRouteContext): Classification | null {
  const message = text.toLowerCase().trim();
  if (message === '') return null;

  // A whole-message yes/no only means something while a draft waits; otherwise "응" is just chat.
  const answer = message.replace(/[\s.!?~,…]+$/u, '').replace(/\s+/g, ' ');
  if (ctx.hasPendingDraft) {
    // Only the user's own words confirm a draft: this is the one way to `confirmDraft`.
    if (rules.draftAnswer.yes.includes(answer)) return { action: 'confirmDraft' };
    if (rules.draftAnswer.no.includes(answer)) return { action: 'cancelDraft' };
  }

  const document = documentQuery(message, rules.document);
  const matched: Domain[] = [];
  if (containsAny(message, rules.calendar.keywords)) matched.push('calendar');
  if (containsAny(message, rules.email.keywords)) matched.push('email');
  if (document !== null) matched.push('document');
  if (isStatusQuestion(message, rules.systemStatus)) matched.push('systemStatus');
  // "회의록 문서 찾아줘" is both a meeting and a document: the classifier reads context better.
  if (matched.length !== 1) return null;

  switch (matched[0]) {
    case 'calendar':
      return calendar(message, rules.calendar, ctx.now, ctx.timeZone ?? DEFAULT_TIME_ZONE);
    case 'email':
      return email(message, rules.email);
    case 'document':
      // A trigger and a verb with nothing else ("문서 찾아줘"): the classifier asks what to look for.
      if (document === '') return null;
      return { action: 'tools', tool: 'document', operation: 'search', params: { query: document } };
    case 'systemStatus':
      return { action: 'systemStatus' };
    default:
      return null;
  }
}

function calendar(
  message: string,
  rules: PreRouteRules['calendar'],
  now: Date,
  timeZone: string,
): Classification | null {
  // Creating needs title, date and time extracted: that is the classifier's work.
  if (containsAny(message, rules.createWords)) return null;
  if (containsAny(message, rules.today)) return { action: 'tools', tool: 'calendar', operation: 'today', params: {} };
  if (containsAny(message, rules.tomorrow)) {
    const day = localDate(now, timeZone, 1);
    return { action: 'tools', tool: 'calendar', operation: 'search', params: { date_from: day, date_to: day } };
  }
  if (containsAny(message, rules.thisWeek)) {
    const { monday, sunday } = localWeek(now, timeZone);
    return { action: 'tools', tool: 'calendar', operation: 'search', params: { date_from: monday, date_to: sunday } };
  }
  // "일정 알려줘" with no day: today is what people mean.
  return { action: 'tools', tool: 'calendar', operation: 'today', params: {} };
}

function email(message: string, rules: PreRouteRules['email']): Classification | null {
  // Sending is refused, but only the classifier can tell "보내줘" from "보내온 메일" reliably.
  if (containsAny(message, rules.sendWords)) return null;
  const params: Record<string, unknown> = { query: '', days: containsAny(message, rules.today) ? 1 : 7 };
  const hint = rules.folderHints.find(({ hint }) => contains(message, hint));
  if (hint !== undefined) params['folder'] = hint.folder;
  return { action: 'tools', tool: 'email', operation: 'search', params };
}

function isStatusQuestion(message: string, rules: PreRouteRules['systemStatus']): boolean {
  return (
    containsAny(message, rules.phrases) ||
    (containsAny(message, rules.subjects) && containsAny(message, rules.states))
  );
}

/**
 * The search query of a document request, '' when only request words remain, or null when the
 * message is not a document search (it needs a trigger word and a verb).
 */
function documentQuery(message: string, rules: PreRouteRules['document']): string | null {
  if (!containsAny(message, rules.triggers) || !containsAny(message, rules.verbs)) return null;
  const request = [...rules.triggers, ...rules.verbs];
  let rest = message;
  // Multi-word terms ("look up") first, while their words are still next to each other.
  for (const term of [...request, ...rules.fillers].filter((t) => /\s/.test(t))) {
    rest = rest.replace(termPattern(term, 'g'), ' ');
  }
  const kept = rest
    .split(/\s+/)
    .map((token) => token.replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, ''))
    .filter((token) => token !== '' && !rules.fillers.includes(token) && !isRequestWord(token, request));
  return kept.join(' ');
}

/** A Korean request word carries its ending ("찾아줘", "문서에서"): it counts when a token starts with it. */
function isRequestWord(token: string, request: readonly string[]): boolean {
  return request.some((term) => (isAsciiWord(term) ? token === term : token.startsWith(term)));
}

function containsAny(message: string, terms: readonly string[]): boolean {
  return terms.some((term) => contains(message, term));
}

/**
 * ASCII words must stand alone ("add" is not in "address"); others match anywhere, because Korean
 * attaches particles and endings to the word ("일정은", "찾아줘").
 */
function contains(message: string, term: string): boolean {
  return isAsciiWord(term) ? termPattern(term, '').test(message) : message.includes(term);
}

const patterns = new Map<string, RegExp>();

function termPattern(term: string, flags: '' | 'g'): RegExp {
  const key = `${flags}:${term}`;
  let pattern = patterns.get(key);
  if (pattern === undefined) {
    const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
    pattern = isAsciiWord(term) ? new RegExp(`(?<![a-z0-9])${escaped}(?![a-z0-9])`, flags) : new RegExp(escaped, flags);
    patterns.set(key, pattern);
  }
  // Global patterns keep state between calls.
  pattern.lastIndex = 0;
  return pattern;
}

function isAsciiWord(term: string): boolean {
  return /^[\x20-\x7e]+$/.test(term);
}

/** The calendar date (YYYY-MM-DD) `offsetDays` from `now`, as seen in `timeZone`. */
export function localDate(now: Date, timeZone: string = DEFAULT_TIME_ZONE, offsetDays = 0): string {
  const { year, month, day } = zonedParts(now, timeZone);
  return isoDate(new Date(Date.UTC(year, month - 1, day + offsetDays)));
}

/** Monday and Sunday (YYYY-MM-DD) of the week that contains `now` in `timeZone`. */
export function localWeek(now: Date, timeZone: string = DEFAULT_TIME_ZONE): { monday: string; sunday: string } {
  const { year, month, day } = zonedParts(now, timeZone);
  // Day arithmetic on a UTC date is free of DST jumps and of the server's own zone.
  const today = new Date(Date.UTC(year, month - 1, day));
  const sinceMonday = (today.getUTCDay() + 6) % 7;
  return {
    monday: isoDate(new Date(Date.UTC(year, month - 1, day - sinceMonday))),
    sunday: isoDate(new Date(Date.UTC(year, month - 1, day - sinceMonday + 6))),
  };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function zonedParts(now: Date, timeZone: string): { year: number; month: number; day: number } {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(now);
  const part = (type: Intl.DateTimeFormatPartTypes): number =>
    Number(parts.find((candidate) => candidate.type === type)?.value);
  return { year: part('year'), month: part('month'), day: part('day') };
}

function isoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}
