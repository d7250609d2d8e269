/**
 * Building blocks of tool param schemas. Models write params loosely — `null` or `""` for "not
 * given", `"7"` for 7, `9:00` for 09:00 — so these accept the harmless variants and normalise them;
 * the messages say what was expected without echoing the value.
 *
 * Wrap every field in {@link required} or {@link optional}: they turn `null` and blank text into
 * "absent" before the field's own schema runs.
 */
import { z } from 'zod';

/** `null` and blank strings mean "not given". */
function absentAsUndefined(value: unknown): unknown {
  return value === null || (typeof value === 'string' && value.trim() === '') ? undefined : value;
}

/** A field that must be given; absent reads as `missing`. */
export function required<S extends z.ZodType>(schema: S) {
  return z.preprocess(absentAsUndefined, schema);
}

/** A field that may be left out (or sent as `null` or blank). */
export function optional<S extends z.ZodType>(schema: S) {
  return z.preprocess(absentAsUndefined, schema.optional());
}

/** `missing` for an absent value, else `expected …`. */
function expected(what: string) {
  return (issue: { input?: unknown }): string => (issue.input === undefined ? 'missing' : `expected ${what}`);
}

/** Text of at most `max` characters, trimmed. */
export function text(what: string, max = 500) {
  return z.string({ error: expected(`${what} as text`) }).trim().max(max, `longer than ${max} characters`);
}

/** An identifier; integers are accepted and turned into text (IMAP uids are numbers). */
export function identifier(what: string) {
  return z.preprocess(
    (value) => (typeof value === 'number' && Number.isInteger(value) ? String(value) : value),
    text(what, 200),
  );
}

/** A real calendar date, `YYYY-MM-DD`. */
export const isoDate = z
  .string({ error: expected('a date YYYY-MM-DD') })
  .trim()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date YYYY-MM-DD')
  .refine(isRealDate, 'not a date in the calendar');

/** A 24-hour time; `9:00` becomes `09:00`. */
export const clockTime = z
  .string({ error: expected('a time HH:MM') })
  .trim()
  .regex(/^([01]?\d|2[0-3]):[0-5]\d$/, 'expected a time HH:MM (24-hour)')
  .transform((time) => time.padStart(5, '0'));

/** A whole number of days in [1, max]; `"7"` is read as 7. */
export function dayCount(max = 365) {
  return z.coerce
    .number({ error: 'expected a number of days' })
    .int('expected a whole number of days')
    .min(1, 'at least 1 day')
    .max(max, `at most ${max} days`);
}

function isRealDate(value: string): boolean {
  const [year, month, day] = value.split('-').map(Number);
  if (year === undefined || month === undefined || day === undefined) return false;
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
