/**
 * The calendar the calendar tests seed into Radicale, around a fixed "now": Wednesday 2026-11-25,
 * 12:00 in Seoul. A weekly meeting that started seven weeks earlier (with its own VTIMEZONE), an
 * all-day holiday today, a timed event written in UTC, one just after midnight in Seoul (still the
 * 25th in UTC), a two-day all-day trip, and one next week.
 */
import type { Radicale } from './start-radicale.js';

/** Wednesday 2026-11-25 12:00 in Asia/Seoul. */
export const FIXED_NOW = new Date('2026-11-25T03:00:00Z');
export const TIME_ZONE = 'Asia/Seoul';
export const CALENDAR_SLUG = 'work';
export const CALENDAR_NAME = 'Work';

const wrap = (body: string): string =>
  ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//Switchboard tests//EN', body, 'END:VCALENDAR', ''].join('\r\n');

const SEOUL = ['BEGIN:VTIMEZONE', 'TZID:Asia/Seoul', 'BEGIN:STANDARD', 'DTSTART:19700101T000000', 'TZOFFSETFROM:+0900', 'TZOFFSETTO:+0900', 'TZNAME:KST', 'END:STANDARD', 'END:VTIMEZONE'].join('\r\n');

const event = (lines: string[]): string => ['BEGIN:VEVENT', 'DTSTAMP:20261001T000000Z', ...lines, 'END:VEVENT'].join('\r\n');

/** The seeded objects by file name. */
export const SEED_EVENTS: Record<string, string> = {
  'weekly-sync.ics': wrap(
    `${SEOUL}\r\n${event(['UID:weekly-sync', 'DTSTART;TZID=Asia/Seoul:20261007T100000', 'DTEND;TZID=Asia/Seoul:20261007T110000', 'RRULE:FREQ=WEEKLY;BYDAY=WE', 'SUMMARY:Weekly sync'])}`,
  ),
  'founders-day.ics': wrap(event(['UID:founders-day', 'DTSTART;VALUE=DATE:20261125', 'DTEND;VALUE=DATE:20261126', 'SUMMARY:Founders day'])),
  'dentist.ics': wrap(event(['UID:dentist', 'DTSTART:20261125T050000Z', 'DTEND:20261125T060000Z', 'SUMMARY:Dentist', 'LOCATION:Gangnam'])),
  'early-standup.ics': wrap(event(['UID:early-standup', 'DTSTART:20261125T153000Z', 'DTEND:20261125T160000Z', 'SUMMARY:Early standup'])),
  'busan-trip.ics': wrap(event(['UID:busan-trip', 'DTSTART;VALUE=DATE:20261127', 'DTEND;VALUE=DATE:20261129', 'SUMMARY:Trip to Busan'])),
  'next-week.ics': wrap(event(['UID:next-week', 'DTSTART:20261201T010000Z', 'DTEND:20261201T020000Z', 'SUMMARY:Planning next week'])),
};

/** Today's events in Seoul, as the tool reports them (sorted: all-day first, then by time). */
export const TODAY = [
  { title: 'Founders day', date: '2026-11-25', time: null, end_date: '2026-11-25', end_time: null, all_day: true, recurring: false },
  { title: 'Weekly sync', date: '2026-11-25', time: '10:00', end_date: '2026-11-25', end_time: '11:00', all_day: false, recurring: true },
  { title: 'Dentist', date: '2026-11-25', time: '14:00', end_date: '2026-11-25', end_time: '15:00', all_day: false, recurring: false, location: 'Gangnam' },
];

/** This week's (Monday 2026-11-23 to Sunday 2026-11-29) in Seoul. */
export const THIS_WEEK = [
  ...TODAY,
  { title: 'Early standup', date: '2026-11-26', time: '00:30', end_date: '2026-11-26', end_time: '01:00', all_day: false, recurring: false },
  { title: 'Trip to Busan', date: '2026-11-27', time: null, end_date: '2026-11-28', end_time: null, all_day: true, recurring: false },
];

/** Makes the calendar and writes every seed event. */
export async function seedCalendar(radicale: Radicale): Promise<void> {
  await radicale.createCalendar(CALENDAR_SLUG, CALENDAR_NAME);
  for (const [filename, text] of Object.entries(SEED_EVENTS)) await radicale.put(CALENDAR_SLUG, filename, text);
}
