/**
 * iCalendar in and out, through ical.js (Mozilla's RFC 5545 library): events of a date range with
 * recurring ones expanded here — Radicale, like many servers, does not expand on its side — and one new
 * VEVENT to write. Times come out as wall times in the persona's zone.
 */
import ICAL from 'ical.js';
import { addDays, instantOf, isKnownTimeZone, wallTimeOf } from './calendar-time.js';

/** One event (or one occurrence of a recurring event) as the calendar tool reports it. */
export interface CalendarEntry {
  title: string;
  /** First day, `YYYY-MM-DD`, local. */
  date: string;
  /** `HH:MM` local, null for an all-day event. */
  time: string | null;
  /** Last day (inclusive), `YYYY-MM-DD`, local. */
  end_date: string;
  /** `HH:MM` local, null for an all-day event. */
  end_time: string | null;
  all_day: boolean;
  /** An occurrence of a repeating event. */
  recurring: boolean;
  location?: string;
  description?: string;
}

/** Local days `from`..`to` (inclusive) in `timeZone`. */
export interface DayRange {
  from: string;
  to: string;
  timeZone: string;
}

/** Occurrences looked at per recurring event at most: a daily event of 27 years. */
const MAX_OCCURRENCES = 10_000;

/**
 * Every event of `objects` (iCalendar texts, one per calendar object) that touches the range, recurring
 * ones expanded, sorted by day, all-day ones first, then by time and title. An object that cannot be
 * parsed is skipped and counted in `skipped`.
 */
export function eventsInRange(objects: readonly string[], range: DayRange): { events: CalendarEntry[]; skipped: number } {
  const start = instantOf(range.from, '00:00', range.timeZone);
  const end = instantOf(addDays(range.to, 1), '00:00', range.timeZone);
  const events: CalendarEntry[] = [];
  let skipped = 0;
  for (const text of objects) {
    try {
      events.push(...objectEvents(text, range, start, end));
    } catch {
      // A broken object (another client's) must not hide the rest of the calendar.
      skipped += 1;
    }
  }
  events.sort(compareEntries);
  return { events, skipped };
}

function compareEntries(a: CalendarEntry, b: CalendarEntry): number {
  if (a.date !== b.date) return a.date < b.date ? -1 : 1;
  if (a.all_day !== b.all_day) return a.all_day ? -1 : 1;
  const at = a.time ?? '';
  const bt = b.time ?? '';
  if (at !== bt) return at < bt ? -1 : 1;
  return a.title.localeCompare(b.title);
}

function objectEvents(text: string, range: DayRange, start: Date, end: Date): CalendarEntry[] {
  const calendar = new ICAL.Component(ICAL.parse(text));
  const components = calendar.getAllSubcomponents('vevent');
  const masters = new Map<string, ICAL.Event>();
  const exceptions: ICAL.Component[] = [];
  for (const component of components) {
    if (component.hasProperty('recurrence-id')) exceptions.push(component);
    else masters.set(String(component.getFirstPropertyValue('uid') ?? ''), new ICAL.Event(component));
  }
  const entries: CalendarEntry[] = [];
  for (const exception of exceptions) {
    const master = masters.get(String(exception.getFirstPropertyValue('uid') ?? ''));
    if (master !== undefined) master.relateException(exception);
    else entries.push(...inRange(occurrenceIn(new ICAL.Event(exception), null, range, start, end)));
  }
  for (const event of masters.values()) {
    if (!event.isRecurring()) {
      entries.push(...inRange(occurrenceIn(event, null, range, start, end)));
      continue;
    }
    const iterator = event.iterator();
    for (let count = 0; count < MAX_OCCURRENCES; count += 1) {
      const next = iterator.next();
      if (!next) break;
      const details = event.getOccurrenceDetails(next);
      const found = occurrenceIn(details.item, details, range, start, end);
      if (found === 'after') break;
      entries.push(...found);
    }
  }
  return entries;
}

const inRange = (found: CalendarEntry[] | 'after'): CalendarEntry[] => (found === 'after' ? [] : found);

type Details = ReturnType<ICAL.Event['getOccurrenceDetails']>;

/** The entry when this occurrence touches the range, [] when it does not, 'after' when it starts after it. */
function occurrenceIn(event: ICAL.Event, details: Details | null, range: DayRange, start: Date, end: Date): CalendarEntry[] | 'after' {
  const startTime = details?.startDate ?? event.startDate;
  const endTime = details?.endDate ?? event.endDate;
  if (!startTime) return [];
  const common = {
    title: event.summary || '(untitled)',
    recurring: details !== null,
    ...(event.location ? { location: event.location } : {}),
    ...(event.description ? { description: event.description } : {}),
  };
  if (startTime.isDate) {
    const date = dateOf(startTime);
    // DTEND of an all-day event is the day after its last; none means one day.
    const endExclusive = endTime && endTime.isDate ? dateOf(endTime) : addDays(date, 1);
    const last = endExclusive > date ? addDays(endExclusive, -1) : date;
    if (date > range.to) return 'after';
    if (last < range.from) return [];
    return [{ ...common, date, time: null, end_date: last, end_time: null, all_day: true }];
  }
  const zone = zoneNameOf(event);
  const from = instantOfTime(startTime, zone, range.timeZone);
  const to = endTime ? instantOfTime(endTime, zone, range.timeZone) : from;
  if (from.getTime() >= end.getTime()) return 'after';
  const touches = to.getTime() > start.getTime() || (to.getTime() === from.getTime() && from.getTime() >= start.getTime());
  if (!touches) return [];
  const local = wallTimeOf(from, range.timeZone);
  const localEnd = wallTimeOf(to, range.timeZone);
  return [{ ...common, date: local.date, time: local.time, end_date: localEnd.date, end_time: localEnd.time, all_day: false }];
}

function dateOf(time: ICAL.Time): string {
  const pad = (value: number, width = 2): string => String(value).padStart(width, '0');
  return `${pad(time.year, 4)}-${pad(time.month)}-${pad(time.day)}`;
}

/** The TZID named on DTSTART, if any. */
function zoneNameOf(event: ICAL.Event): string | null {
  const tzid = event.component.getFirstProperty('dtstart')?.getParameter('tzid');
  return typeof tzid === 'string' && tzid !== '' ? tzid : null;
}

/**
 * The instant of a date-time: UTC as written; a zone defined in the object (VTIMEZONE) through
 * ical.js; a TZID without a definition read as the IANA zone of that name; a floating time in the
 * persona's zone.
 */
function instantOfTime(time: ICAL.Time, tzid: string | null, personaZone: string): Date {
  const zone = time.zone;
  if (zone === ICAL.Timezone.utcTimezone || zone?.tzid === 'UTC') {
    return new Date(Date.UTC(time.year, time.month - 1, time.day, time.hour, time.minute, time.second));
  }
  if (zone && zone.component && zone !== ICAL.Timezone.localTimezone) return new Date(time.toUnixTime() * 1000);
  const wallZone = tzid !== null && isKnownTimeZone(tzid) ? tzid : personaZone;
  const pad = (value: number): string => String(value).padStart(2, '0');
  return instantOf(dateOf(time), `${pad(time.hour)}:${pad(time.minute)}:${pad(time.second)}`, wallZone);
}

/** What {@link newEventObject} writes. */
export interface NewEvent {
  uid: string;
  title: string;
  start: Date;
  end: Date;
  description?: string;
  /** DTSTAMP. */
  stamp: Date;
}

/** One VCALENDAR with one VEVENT, times in UTC (exact whatever zone the reader's client is in). */
export function newEventObject(event: NewEvent): string {
  const calendar = new ICAL.Component(['vcalendar', [], []]);
  calendar.updatePropertyWithValue('prodid', '-//Switchboard//calendar tool//EN');
  calendar.updatePropertyWithValue('version', '2.0');
  const vevent = new ICAL.Component('vevent');
  vevent.updatePropertyWithValue('uid', event.uid);
  vevent.updatePropertyWithValue('dtstamp', utcTime(event.stamp));
  vevent.updatePropertyWithValue('dtstart', utcTime(event.start));
  vevent.updatePropertyWithValue('dtend', utcTime(event.end));
  vevent.updatePropertyWithValue('summary', event.title);
  if (event.description) vevent.updatePropertyWithValue('description', event.description);
  calendar.addSubcomponent(vevent);
  return `${calendar.toString()}\r\n`;
}

function utcTime(instant: Date): ICAL.Time {
  return ICAL.Time.fromJSDate(new Date(Math.floor(instant.getTime() / 1000) * 1000), true);
}
