/**
 * The calendar tool (DESIGN §6) over CalDAV: `today` and `search` list the events of local days in the
 * persona's zone (recurring ones expanded here, all-day ones marked, sorted); `create_draft` writes
 * nothing — its data is the draft the job stores and shows; `create_confirmed` writes the draft as a
 * VEVENT, and is run by the job only for the user's own yes-words. A server that cannot be used answers
 * `tool_failed` with the cause in words; the registry's timeout answers `tool_timeout` and aborts the
 * request through the operation's signal.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { localDate } from '../../jobs/pre-route.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { CalendarServerError, type CalendarConnection } from './caldav-connection.js';
import { addDays, instantOf, wallTimeOf } from './calendar-time.js';
import { eventsInRange, newEventObject } from './icalendar.js';
import { defineOperation, type ToolDefinition } from './tool-operation.js';
import { clockTime, isoDate, optional, required, text } from './tool-params.js';
import { ToolError, toolFailure, type ToolResult } from './tool-result.js';

/** Params of `calendar.search`; `date_to` defaults to `date_from` (one day). */
export const calendarSearchParams = z
  .object({ date_from: required(isoDate), date_to: optional(isoDate) })
  .transform(({ date_from, date_to }) => ({ date_from, date_to: date_to ?? date_from }))
  .refine(({ date_from, date_to }) => date_from <= date_to, {
    message: 'date_to is before date_from',
    path: ['date_to'],
  });

/** Params of `calendar.create_draft`, and the draft `calendar.create_confirmed` receives. */
export const calendarDraftParams = z
  .object({
    title: required(text('a title', 200)),
    date: required(isoDate),
    time: required(clockTime),
    end_time: optional(clockTime),
    description: optional(text('a description', 2_000)),
    /** Set by create_draft (a model's is ignored there): the event's UID, so a repeated yes writes it once. */
    uid: optional(text('an event id', 100).regex(/^[A-Za-z0-9.@_-]+$/, 'expected an event id')),
  })
  .refine(({ time, end_time }) => end_time === undefined || end_time > time, {
    message: 'end_time is not after time',
    path: ['end_time'],
  });

export type CalendarDraft = z.output<typeof calendarDraftParams>;

/** Length of an event created without an end time. */
export const DEFAULT_EVENT_MINUTES = 60;

/** What the calendar tool needs besides its settings. */
export interface CalendarToolOptions {
  /** The server connection; null when the calendar is not configured. */
  connection: CalendarConnection | null;
  /** The persona's IANA zone: what dates and times mean. */
  timeZone: string;
  messages: Messages;
}

/** The calendar tool (null connection = not configured). */
export function createCalendarTools(options: CalendarToolOptions): ToolDefinition {
  const { connection, timeZone, messages } = options;
  const server = (): CalendarConnection => {
    if (connection === null) throw new Error('the calendar is not configured');
    return connection;
  };

  const list = async (from: string, to: string, signal: AbortSignal): Promise<ToolResult> => {
    const objects = await failuresInWords(messages, () =>
      server().objectsBetween(instantOf(from, '00:00', timeZone), instantOf(addDays(to, 1), '00:00', timeZone), signal),
    );
    const { events } = eventsInRange(objects, { from, to, timeZone });
    if (events.length === 0) return { ok: true, data: [], summary: fillTemplate(messages.tools.calendarNone, { from, to }) };
    const lines = events.map((event) => {
      const when = event.all_day ? `${event.date} ${messages.tools.calendarAllDay}` : `${event.date} ${event.time}–${event.end_time}`;
      return `- ${when} ${event.title}`;
    });
    return { ok: true, data: events, summary: [fillTemplate(messages.tools.calendarFound, { count: events.length }), ...lines].join('\n') };
  };

  return {
    guard: () => (connection === null ? toolFailure('tool_not_configured', messages.tools.calendarNotConfigured) : null),
    operations: {
      today: defineOperation(z.object({}), async (_params, { now, signal }) => {
        const day = localDate(now, timeZone);
        return list(day, day, signal);
      }),
      search: defineOperation(calendarSearchParams, async ({ date_from, date_to }, { signal }) => list(date_from, date_to, signal)),
      create_draft: defineOperation(calendarDraftParams, async (draft) => ({
        ok: true,
        // Exactly the params create_confirmed takes back: the job stores this and the user's yes writes it.
        // The UID is chosen now, so a yes repeated after a write whose answer was lost writes nothing new.
        data: { ...draft, uid: `${randomUUID()}@switchboard` },
        summary: fillTemplate(messages.tools.calendarDraft, { title: draft.title, when: describeWhen(draft) }),
      })),
      create_confirmed: defineOperation(calendarDraftParams, async (draft, { now, signal }) => {
        const start = instantOf(draft.date, draft.time, timeZone);
        const end =
          draft.end_time === undefined
            ? new Date(start.getTime() + DEFAULT_EVENT_MINUTES * 60_000)
            : instantOf(draft.date, draft.end_time, timeZone);
        const uid = draft.uid ?? `${randomUUID()}@switchboard`;
        const object = newEventObject({
          uid,
          title: draft.title,
          start,
          end,
          stamp: now,
          ...(draft.description === undefined ? {} : { description: draft.description }),
        });
        await failuresInWords(messages, () => server().create(`${uid}.ics`, object, signal));
        const endLocal = wallTimeOf(end, timeZone);
        const shown = { ...draft, end_time: endLocal.time };
        return {
          ok: true,
          data: { created: true, ...shown, uid, time_zone: timeZone },
          summary: fillTemplate(messages.tools.calendarCreated, { title: draft.title, when: describeWhen(shown) }),
        };
      }),
    },
  };
}

/** `2026-11-30 15:00–16:00`, or `2026-11-30 15:00` without an end. */
function describeWhen(draft: Pick<CalendarDraft, 'date' | 'time' | 'end_time'>): string {
  return draft.end_time === undefined ? `${draft.date} ${draft.time}` : `${draft.date} ${draft.time}–${draft.end_time}`;
}

/** Runs a server call; a {@link CalendarServerError} becomes a `tool_failed` the user can read. */
async function failuresInWords<T>(messages: Messages, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof CalendarServerError)) throw error;
    throw new ToolError('tool_failed', fillTemplate(messages.tools.calendarFailed, { cause: error.detail }), error.detail);
  }
}
