/**
 * The schema of `prompts/pre-route.json`: the keyword rules that let common requests skip the
 * classifier (DESIGN §6). Words are trimmed and lower-cased here, once, so matching can compare them
 * with the lower-cased message directly.
 */
import { z } from 'zod';

const word = z.string().trim().min(1).toLowerCase();
const words = z.array(word).min(1);

export const preRouteRulesSchema = z.strictObject({
  /** Free text for whoever edits the file. */
  $comment: z.string().optional(),
  calendar: z.strictObject({
    /** Any of these makes the message about the calendar. */
    keywords: words,
    /** Asking to create an event: left to the classifier, which extracts title, date and time. */
    createWords: words,
    today: words,
    tomorrow: words,
    thisWeek: words,
  }),
  email: z.strictObject({
    keywords: words,
    /** Sending, replying, forwarding: left to the classifier (the registry refuses sending). */
    sendWords: words,
    /** Limits the search to the last day instead of the last 7. */
    today: words,
    /** Hint word → mailbox folder, first match in file order wins. */
    folderHints: z
      .record(z.string().trim().min(1), z.string().trim().min(1))
      .transform((hints) => Object.entries(hints).map(([hint, folder]) => ({ hint: hint.toLowerCase(), folder }))),
  }),
  document: z.strictObject({
    /** A document word and a search verb together make a document search. */
    triggers: words,
    verbs: words,
    /** Words dropped from the query besides triggers and verbs (whole words only). */
    fillers: z.array(word),
  }),
  systemStatus: z.strictObject({
    /** Any of these alone asks for the status. */
    phrases: words,
    /** A subject and a state word together ask for it too. */
    subjects: words,
    states: words,
  }),
  draftAnswer: z.strictObject({
    /** Whole-message answers to a pending draft. */
    yes: words,
    no: words,
  }),
});

/** The parsed, normalised pre-route rules. */
export type PreRouteRules = z.infer<typeof preRouteRulesSchema>;
