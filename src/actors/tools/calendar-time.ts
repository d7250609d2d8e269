/**
 * Wall time in an IANA zone and back, with nothing but `Intl`: the calendar speaks in the persona's
 * local dates and clock times, the CalDAV server in instants.
 */

/** A local date and clock time as a person in some zone reads them. */
export interface WallTime {
  /** `YYYY-MM-DD`. */
  date: string;
  /** `HH:MM`, 24-hour. */
  time: string;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** The parts of `instant` on a wall clock in `timeZone`. */
function wallParts(instant: Date, timeZone: string): [number, number, number, number, number, number] {
  const parts = formatter(timeZone).formatToParts(instant);
  const part = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value);
  return [part('year'), part('month'), part('day'), part('hour'), part('minute'), part('second')];
}

/** `instant` as a local date and time in `timeZone`. */
export function wallTimeOf(instant: Date, timeZone: string): WallTime {
  const [year, month, day, hour, minute] = wallParts(instant, timeZone);
  const pad = (value: number, width = 2): string => String(value).padStart(width, '0');
  return { date: `${pad(year, 4)}-${pad(month)}-${pad(day)}`, time: `${pad(hour)}:${pad(minute)}` };
}

/** How far `timeZone`'s wall clock is ahead of UTC at `instant`, in milliseconds. */
function offsetAt(instant: Date, timeZone: string): number {
  const [year, month, day, hour, minute, second] = wallParts(instant, timeZone);
  const wallAsUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  return wallAsUtc - Math.floor(instant.getTime() / 1000) * 1000;
}

/**
 * The instant a wall clock in `timeZone` shows `date` `time` (seconds optional). A time skipped by a
 * DST jump is read with the offset before the jump (so it lands just after it); a repeated hour takes
 * its first occurrence.
 */
export function instantOf(date: string, time: string, timeZone: string): Date {
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  const [hour, minute, second = 0] = time.split(':').map(Number) as [number, number, number?];
  const wallAsUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Two rounds settle every real zone: the offset at the first guess may differ from the one at the answer.
  const first = wallAsUtc - offsetAt(new Date(wallAsUtc), timeZone);
  const second2 = wallAsUtc - offsetAt(new Date(first), timeZone);
  return new Date(Math.min(first, second2));
}

/** The date `days` after `date` (both `YYYY-MM-DD`). */
export function addDays(date: string, days: number): string {
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(year, month - 1, day + days)).toISOString().slice(0, 10);
}

/** Whether `timeZone` is an IANA zone `Intl` knows. */
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
    return true;
  } catch {
    return false;
  }
}
