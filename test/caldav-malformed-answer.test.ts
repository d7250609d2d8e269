/**
 * A CalDAV server whose answer to a calendar query is not a whole multistatus document (cut halfway,
 * garbled) makes the calendar call fail with a `CalendarServerError` — tsdav alone reads such a body as
 * an empty list, so the user was told "nothing on your calendar" by a server that had failed. Found by
 * the fault matrix (test/reliability/fault-matrix-*.test.ts, tools × malformed). Real Radicale behind
 * the matrix's fault proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CalendarServerError, createCalDavConnection, type CalendarConnection } from '../src/actors/tools/caldav-connection.js';
import { CALENDAR_NAME, seedCalendar } from './helpers/calendar-seeds.js';
import { startRadicale, type Radicale } from './helpers/start-radicale.js';
import { FaultProxy } from './reliability/helpers/fault-proxy.js';

const DAY = { start: new Date('2026-11-24T15:00:00Z'), end: new Date('2026-11-25T15:00:00Z') };

describe('a calendar query answered with a broken multistatus', () => {
  let radicale: Radicale;
  let proxy: FaultProxy;
  let connection: CalendarConnection;

  beforeAll(async () => {
    radicale = await startRadicale();
    await seedCalendar(radicale);
    proxy = await FaultProxy.start(radicale.url);
    connection = createCalDavConnection(
      { url: proxy.url, user: radicale.user, password: radicale.password, calendar: CALENDAR_NAME, draftTtlMs: 60_000 },
      { allowHosts: ['127.0.0.1'] },
    );
  }, 30_000);

  afterAll(async () => {
    await connection?.close();
    await proxy?.close();
    await radicale?.close();
  });

  it('fails the call instead of reading it as no events, and the next call reads the events again', async () => {
    const events = await connection.objectsBetween(DAY.start, DAY.end, AbortSignal.timeout(10_000));
    expect(events.length).toBeGreaterThan(0);

    await proxy.arm('malformed');
    const failed = connection.objectsBetween(DAY.start, DAY.end, AbortSignal.timeout(10_000));
    await expect(failed).rejects.toBeInstanceOf(CalendarServerError);
    await expect(failed).rejects.toThrow(/not a whole multistatus/);

    await proxy.disarm();
    expect(await connection.objectsBetween(DAY.start, DAY.end, AbortSignal.timeout(10_000))).toEqual(events);
  });
});
