/**
 * The user-facing fixed sentences (`prompts/messages.json`): processing notices, tool refusals, draft
 * answers, error texts and the labels of the system status text. One block per locale; `ko` and `en`
 * are required (English is the fallback for any other locale), more may be added.
 */
import { z } from 'zod';

const text = z.string().trim().min(1);

/** The sentences of one locale. Strict: a misspelt key in the file is an error, not a silent gap. */
export const localeMessagesSchema = z.strictObject({
  processing: z.strictObject({
    analysing: text,
    generating: text,
    routing: text,
    reasonerBusy: text,
    switchingModel: text,
    /** `{{tool}}`. */
    usingTool: text,
    formattingResult: text,
    checkingStatus: text,
    searchingDocuments: text,
  }),
  tools: z.strictObject({
    calendarNotConfigured: text,
    /** `{{cause}}`: why the CalDAV server could not be used, in words. */
    calendarFailed: text,
    /** `{{from}}`, `{{to}}`. */
    calendarNone: text,
    /** `{{count}}`. */
    calendarFound: text,
    calendarAllDay: text,
    /** `{{title}}`, `{{when}}`. */
    calendarDraft: text,
    /** `{{title}}`, `{{when}}`. */
    calendarCreated: text,
    emailNotConfigured: text,
    /** The IMAP server cannot be reached (refused, down, dropped). */
    emailUnreachable: text,
    /** The IMAP server refused the login (or the password variable is not set). */
    emailLoginFailed: text,
    /** `{{folder}}`, `{{folders}}` (those there are). */
    emailFolderNotFound: text,
    emailNotFound: text,
    /** `{{count}}`. */
    emailFound: text,
    /** `{{query}}`, `{{days}}`. */
    emailNone: text,
    /** `{{days}}`. */
    emailNoneRecent: text,
    emailTruncated: text,
    documentsNotConfigured: text,
    /** `{{tool}}`: configured, but its implementation has not arrived yet. */
    toolUnavailable: text,
    emailSendRefused: text,
    unknownTool: text,
    /** `{{details}}`: which parameter was wrong and how. */
    badParams: text,
    timeout: text,
    failed: text,
    /** `{{count}}`. */
    documentsFound: text,
    /** `{{query}}`. */
    documentsNone: text,
    documentNotFound: text,
    documentTruncated: text,
  }),
  draft: z.strictObject({ confirm: text, noDraft: text, cancelled: text }),
  errors: z.strictObject({
    noResult: text,
    noAnswer: text,
    internal: text,
    backendUnavailable: text,
    modelMissing: text,
    answerTooLong: text,
    storeUnavailable: text,
    interrupted: text,
    cancelled: text,
  }),
  status: z.strictObject({
    title: text,
    state: z.strictObject({ up: text, down: text, unknown: text }),
    load: z.strictObject({ idle: text, normal: text, busy: text, very_busy: text }),
    source: z.strictObject({ status_api: text, hybrid: text }),
    /** `{{waiting}}`, `{{running}}`. */
    queue: text,
    /** `{{ms}}`. */
    health: text,
    /** `{{active}}`, `{{pending}}`. */
    jobs: text,
    noBackends: text,
  }),
});

/** The sentences of one locale. */
export type Messages = z.infer<typeof localeMessagesSchema>;

/** The whole `messages.json`: `ko` and `en` required, other locales optional. */
export const messagesFileSchema = z
  .object({ ko: localeMessagesSchema, en: localeMessagesSchema })
  .catchall(localeMessagesSchema);

export type MessagesFile = z.infer<typeof messagesFileSchema>;

/** The locale every other one falls back to. */
export const FALLBACK_LOCALE = 'en';

const PLACEHOLDER = /\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}/gi;

/**
 * Replaces `{{name}}` with `values.name`. Placeholders without a value stay as they are, so a template
 * can be filled in two steps (persona name at start, tool name per call).
 */
export function fillTemplate(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    const value = values[name];
    return value === undefined ? whole : String(value);
  });
}

/** The names of the placeholders left in `text`. */
export function placeholdersIn(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].map((match) => match[1] ?? '');
}
