/**
 * The calendar tool's operations (DESIGN §6). Their params are the contract the classifier prompt
 * describes; the CalDAV implementation arrives in a later issue, so until then a configured calendar
 * answers `tool_unavailable` and an unconfigured one `tool_not_configured`.
 */
import { z } from 'zod';
import type { Config } from '../../config/config-schema.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { defineOperation, type ToolDefinition } from './tool-operation.js';
import { clockTime, isoDate, optional, required, text } from './tool-params.js';
import { toolFailure, type ToolResult } from './tool-result.js';

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
  })
  .refine(({ time, end_time }) => end_time === undefined || end_time > time, {
    message: 'end_time is not after time',
    path: ['end_time'],
  });

export type CalendarDraft = z.output<typeof calendarDraftParams>;

/** The calendar tool for `config.tools.calendar` (null = not configured). */
export function createCalendarTools(calendar: Config['tools']['calendar'], messages: Messages): ToolDefinition {
  const notYet = async (): Promise<ToolResult> =>
    toolFailure('tool_unavailable', fillTemplate(messages.tools.toolUnavailable, { tool: 'calendar' }));
  return {
    guard: () => (calendar === null ? toolFailure('tool_not_configured', messages.tools.calendarNotConfigured) : null),
    operations: {
      today: defineOperation(z.object({}), notYet),
      search: defineOperation(calendarSearchParams, notYet),
      create_draft: defineOperation(calendarDraftParams, notYet),
      create_confirmed: defineOperation(calendarDraftParams, notYet),
    },
  };
}
