/**
 * The calendar tool against a real Radicale: today and search in the persona's zone (a weekly event
 * that started weeks ago expanded here, all-day events marked, sorted), create_draft writing nothing,
 * create_confirmed writing a VEVENT at the right instant, a server that refuses (`tool_failed` in
 * words, no credentials), one that hangs (`tool_timeout`, its request aborted), a host outside
 * `egress.allowHosts`, and one connection reused and closed.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ICAL from 'ical.js';
import { createCalDavConnection } from '../src/actors/tools/caldav-connection.js';
import { createToolRegistry, type ToolRegistry } from '../src/actors/tools/create-tool-registry.js';
import type { ToolResult } from '../src/actors/tools/tool-result.js';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { MASK, maskSecrets } from '../src/config/mask-secrets.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import { CALENDAR_NAME, CALENDAR_SLUG, FIXED_NOW, SEED_EVENTS, seedCalendar, THIS_WEEK, TIME_ZONE, TODAY } from './helpers/calendar-seeds.js';
import { startRadicale, type Radicale } from './helpers/start-radicale.js';

const prompts = await loadPrompts(undefined, { name: 'Eid', locale: 'en' });
const en = prompts.messages('en');

let radicale: Radicale;
beforeAll(async () => {
  radicale = await startRadicale();
  await seedCalendar(radicale);
  // A second calendar, so "the first one" and "the named one" can differ.
  await radicale.createCalendar('home', 'Home');
}, 30_000);
afterAll(async () => {
  await radicale?.close();
});

function calendarConfig(extra: Record<string, unknown> = {}) {
  return parseConfig({
    backends: { local: { baseUrl: 'http://127.0.0.1:1/v1', model: 'm' } },
    tools: { calendar: { url: radicale.url, user: radicale.user, password: radicale.password, calendar: CALENDAR_NAME, ...extra } },
    persona: { locale: 'en', timeZone: TIME_ZONE },
  });
}

function registryFor(config = calendarConfig(), extra: Partial<Parameters<typeof createToolRegistry>[0]> = {}): ToolRegistry {
  return createToolRegistry({
    store: { searchDocuments: async () => [], readDocument: async () => null },
    config,
    messages: en,
    now: () => FIXED_NOW,
    allowHosts: config.egress.allowHosts,
    timeZone: config.persona.timeZone,
    ...extra,
  });
}

function ok(result: ToolResult) {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}: ${result.message}`);
  return result;
}

describe('reading the calendar', () => {
  it("today: the persona's day, the weekly event's occurrence expanded, all-day first, sorted", async () => {
    const tools = registryFor();
    const result = ok(await tools.run('calendar', 'today', {}));
    expect(result.data).toEqual(TODAY);
    expect(result.summary).toBe([`3 events:`, '- 2026-11-25 all day Founders day', '- 2026-11-25 10:00–11:00 Weekly sync', '- 2026-11-25 14:00–15:00 Dentist'].join('\n'));
    await tools.close();
  });

  it('search: a week, with an event just after midnight in Seoul (still the day before in UTC) and a two-day all-day event', async () => {
    const tools = registryFor();
    const result = ok(await tools.run('calendar', 'search', { date_from: '2026-11-23', date_to: '2026-11-29' }));
    expect(result.data).toEqual(THIS_WEEK);
    // The weekly event, seven weeks on: every Wednesday of the range and no other day.
    const later = ok(await tools.run('calendar', 'search', { date_from: '2026-12-01', date_to: '2026-12-16' }));
    expect((later.data as Array<{ title: string; date: string }>).map(({ title, date }) => `${date} ${title}`)).toEqual([
      '2026-12-01 Planning next week',
      '2026-12-02 Weekly sync',
      '2026-12-09 Weekly sync',
      '2026-12-16 Weekly sync',
    ]);
    await tools.close();
  });

  it('EXDATE drops an occurrence and a RECURRENCE-ID override moves one', async () => {
    const lines = (...body: string[]) => body.join('\r\n');
    await radicale.put(
      'home',
      'standup.ics',
      lines(
        'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN',
        'BEGIN:VEVENT', 'UID:standup', 'DTSTAMP:20261001T000000Z', 'DTSTART:20261005T090000Z', 'DTEND:20261005T093000Z',
        'RRULE:FREQ=WEEKLY', 'EXDATE:20261123T090000Z', 'SUMMARY:Standup', 'END:VEVENT',
        'BEGIN:VEVENT', 'UID:standup', 'DTSTAMP:20261001T000000Z', 'RECURRENCE-ID:20261130T090000Z',
        'DTSTART:20261201T090000Z', 'DTEND:20261201T093000Z', 'SUMMARY:Standup (moved)', 'END:VEVENT',
        'END:VCALENDAR', '',
      ),
    );
    const tools = registryFor(calendarConfig({ calendar: 'Home' }));
    const result = ok(await tools.run('calendar', 'search', { date_from: '2026-11-16', date_to: '2026-12-07' }));
    expect((result.data as Array<{ title: string; date: string; time: string }>).map(({ title, date, time }) => `${date} ${time} ${title}`)).toEqual([
      '2026-11-16 18:00 Standup',
      '2026-12-01 18:00 Standup (moved)',
      '2026-12-07 18:00 Standup',
    ]);
    await tools.close();
  });

  it('a day without events says so, and the job has nothing to phrase (empty data)', async () => {
    const tools = registryFor();
    const result = ok(await tools.run('calendar', 'search', { date_from: '2026-11-30', date_to: '2026-11-30' }));
    expect(result.data).toEqual([]);
    expect(result.summary).toBe('No events from 2026-11-30 to 2026-11-30.');
    await tools.close();
  });

  it('without `calendar` the first one is used, and the operator is told which', async () => {
    const notices: string[] = [];
    const config = parseConfig({
      backends: { local: { baseUrl: 'http://127.0.0.1:1/v1', model: 'm' } },
      tools: { calendar: { url: radicale.url, user: radicale.user, password: radicale.password } },
      persona: { locale: 'en', timeZone: TIME_ZONE },
    });
    const tools = registryFor(config, { onNotice: (message) => notices.push(message) });
    ok(await tools.run('calendar', 'today', {}));
    ok(await tools.run('calendar', 'today', {}));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^tools\.calendar\.calendar is not set: using the first calendar, "(Work|Home)"$/);
    await tools.close();
  });

  it("a calendar's own URL picks that calendar when `calendar` is not set", async () => {
    const notices: string[] = [];
    const config = parseConfig({
      backends: { local: { baseUrl: 'http://127.0.0.1:1/v1', model: 'm' } },
      tools: { calendar: { url: `${radicale.url}${radicale.user}/${CALENDAR_SLUG}/`, user: radicale.user, password: radicale.password } },
      persona: { locale: 'en', timeZone: TIME_ZONE },
    });
    const tools = registryFor(config, { onNotice: (message) => notices.push(message) });
    expect(ok(await tools.run('calendar', 'today', {})).data).toEqual(TODAY);
    expect(notices).toEqual([]);
    await tools.close();
  });

  it('a calendar name that does not exist is a readable tool_failed naming the ones there are', async () => {
    const tools = registryFor(calendarConfig({ calendar: 'Holidays' }));
    const result = await tools.run('calendar', 'today', {});
    expect(result).toMatchObject({ ok: false, reason: 'tool_failed' });
    expect(!result.ok && result.message).toMatch(/no calendar "Holidays" \(the user has "(Work|Home)", "(Work|Home)"\)/);
    await tools.close();
  });
});

describe('drafts and writing', () => {
  it('create_draft writes nothing and returns exactly the params create_confirmed takes', async () => {
    const before = radicale.storedEvents(CALENDAR_SLUG).length;
    const tools = registryFor();
    const result = ok(await tools.run('calendar', 'create_draft', { title: 'Review', date: '2026-11-26', time: '9:00', end_time: null }));
    expect(result.data).toEqual({ title: 'Review', date: '2026-11-26', time: '09:00', uid: expect.stringMatching(/^[0-9a-f-]{36}@switchboard$/) });
    expect(result.summary).toBe('New event: Review, 2026-11-26 09:00');
    expect(radicale.storedEvents(CALENDAR_SLUG)).toHaveLength(before);
    await tools.close();
  });

  it('the same draft confirmed twice (a yes repeated after a lost answer) is written once, under the UID the draft chose', async () => {
    const before = radicale.storedEvents(CALENDAR_SLUG).length;
    const tools = registryFor();
    const draft = ok(await tools.run('calendar', 'create_draft', { title: 'Retro', date: '2026-11-27', time: '11:00', end_time: '11:30', uid: 'dentist' }));
    const { uid } = draft.data as { uid: string };
    expect(uid).not.toBe('dentist');
    for (let i = 0; i < 2; i += 1) expect(ok(await tools.run('calendar', 'create_confirmed', draft.data)).data).toMatchObject({ created: true, uid });
    const stored = radicale.storedEvents(CALENDAR_SLUG);
    expect(stored).toHaveLength(before + 1);
    expect(stored.filter((text) => text.includes(`UID:${uid}`))).toHaveLength(1);
    await tools.close();
  });

  it('create_confirmed writes one VEVENT at the local time (UTC instants), an hour long without end_time, and reads back', async () => {
    const before = radicale.storedEvents(CALENDAR_SLUG);
    const tools = registryFor();
    const result = ok(await tools.run('calendar', 'create_confirmed', { title: '회의', date: '2026-11-26', time: '15:00', description: 'quarterly, "numbers"; and more' }));
    expect(result.data).toMatchObject({ created: true, title: '회의', date: '2026-11-26', time: '15:00', end_time: '16:00', time_zone: TIME_ZONE });
    const added = radicale.storedEvents(CALENDAR_SLUG).filter((text) => !before.includes(text));
    expect(added).toHaveLength(1);
    const vevent = new ICAL.Component(ICAL.parse(added[0]!)).getFirstSubcomponent('vevent')!;
    expect(vevent.getFirstPropertyValue('summary')).toBe('회의');
    expect(vevent.getFirstPropertyValue('description')).toBe('quarterly, "numbers"; and more');
    expect(String(vevent.getFirstPropertyValue('uid'))).toBe((result.data as { uid: string }).uid);
    expect((vevent.getFirstPropertyValue('dtstart') as ICAL.Time).toString()).toBe('2026-11-26T06:00:00Z');
    expect((vevent.getFirstPropertyValue('dtend') as ICAL.Time).toString()).toBe('2026-11-26T07:00:00Z');
    const day = ok(await tools.run('calendar', 'search', { date_from: '2026-11-26' }));
    expect(day.data).toContainEqual(expect.objectContaining({ title: '회의', date: '2026-11-26', time: '15:00', end_time: '16:00', description: 'quarterly, "numbers"; and more' }));
    await tools.close();
  });
});

describe('failures', () => {
  it('a stopped server is tool_failed with the cause in words (no URL, no credentials); after it is back the next call works', async () => {
    const errors: unknown[] = [];
    const tools = registryFor(calendarConfig(), { onError: (error) => errors.push(error) });
    ok(await tools.run('calendar', 'today', {}));
    await radicale.stop();
    try {
      const result = await tools.run('calendar', 'today', {}, undefined, 'job-7');
      expect(result).toEqual({ ok: false, reason: 'tool_failed', message: 'The calendar server could not be used: unreachable (connection refused, ECONNREFUSED).' });
      expect(errors).toHaveLength(1);
      expect(JSON.stringify({ ...(errors[0] as object), message: (errors[0] as Error).message })).not.toContain(radicale.password);
    } finally {
      await radicale.start();
    }
    expect(ok(await tools.run('calendar', 'today', {})).data).toEqual(TODAY);
    await tools.close();
  });

  it('a wrong password is tool_failed saying the server refused it', async () => {
    const tools = registryFor(calendarConfig({ password: 'not-the-password' }));
    const result = await tools.run('calendar', 'today', {});
    expect(result).toEqual({
      ok: false,
      reason: 'tool_failed',
      message: 'The calendar server could not be used: HTTP 401 (the server refused the user name or password).',
    });
    await tools.close();
  });

  it('passwordEnv is read from the environment; unset, it says which variable', async () => {
    const config = calendarConfig({ password: undefined, passwordEnv: 'SB_TEST_CALDAV_PASSWORD' });
    const env: NodeJS.ProcessEnv = {};
    const connection = createCalDavConnection(config.tools.calendar!, { allowHosts: ['127.0.0.1'], env });
    const tools = registryFor(config, { calendarConnection: connection });
    expect(await tools.run('calendar', 'today', {})).toMatchObject({ ok: false, reason: 'tool_failed', message: expect.stringContaining('SB_TEST_CALDAV_PASSWORD') });
    env['SB_TEST_CALDAV_PASSWORD'] = radicale.password;
    expect(ok(await tools.run('calendar', 'today', {})).data).toEqual(TODAY);
    await tools.close();
  });

  it('a host outside egress.allowHosts is never contacted', async () => {
    const config = calendarConfig();
    const tools = registryFor(config, { allowHosts: ['caldav.example.org'] });
    const result = await tools.run('calendar', 'today', {});
    expect(result).toMatchObject({ ok: false, reason: 'tool_failed', message: expect.stringContaining('"127.0.0.1" is not in egress.allowHosts') });
    await tools.close();
  });

  it('a server that never answers is tool_timeout, and the request is aborted (its socket closed)', async () => {
    const sockets: Socket[] = [];
    const closed: Promise<void>[] = [];
    const hung = createServer((socket) => {
      sockets.push(socket);
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
      socket.on('data', () => undefined);
    });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const port = (hung.address() as { port: number }).port;
    const config = calendarConfig({ url: `http://127.0.0.1:${port}/` });
    const tools = registryFor(config, { timeoutMs: 300 });
    try {
      expect(await tools.run('calendar', 'today', {})).toEqual({ ok: false, reason: 'tool_timeout', message: en.tools.timeout });
      expect(sockets.length).toBeGreaterThan(0);
      await Promise.all(closed);
    } finally {
      await tools.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  it('one client: discovered once, then reused by every call', async () => {
    const wellKnown = (): number => (radicale.log().match(/PROPFIND request for '\/\.well-known\/caldav'/g) ?? []).length;
    const tools = registryFor();
    const before = wellKnown();
    for (let i = 0; i < 3; i += 1) ok(await tools.run('calendar', 'today', {}));
    expect(wellKnown() - before).toBe(1);
    await tools.close();
  });

  it('a call cancelled while discovery runs does not fail another call waiting for the same discovery', async () => {
    const tools = registryFor();
    const cancel = new AbortController();
    const cancelled = tools.run('calendar', 'today', {}, cancel.signal);
    const other = tools.run('calendar', 'today', {});
    cancel.abort();
    expect(await cancelled).toMatchObject({ ok: false, reason: 'cancelled' });
    expect(ok(await other).data).toEqual(TODAY);
    await tools.close();
  });

  it('after close, calls fail instead of opening new connections', async () => {
    const tools = registryFor();
    ok(await tools.run('calendar', 'today', {}));
    await tools.close();
    expect(await tools.run('calendar', 'today', {})).toMatchObject({ ok: false, reason: 'tool_failed', message: expect.stringContaining('shutting down') });
  });

  it('the seeds are what Radicale holds (sanity)', () => {
    expect(radicale.storedEvents(CALENDAR_SLUG).length).toBeGreaterThanOrEqual(Object.keys(SEED_EVENTS).length);
  });
});

describe('tools.calendar in the config', () => {
  const base = { url: 'http://127.0.0.1:5232/', user: 'alice' };
  const parse = (calendar: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    parseConfig({ backends: { local: { baseUrl: 'http://127.0.0.1:1/v1', model: 'm' } }, tools: { calendar }, ...extra });
  const problems = (calendar: Record<string, unknown>, extra: Record<string, unknown> = {}): string[] => {
    try {
      parse(calendar, extra);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('takes exactly one of password and passwordEnv, and defaults the draft expiry to 10 minutes', () => {
    expect(parse({ ...base, password: 'pw-secret' }).tools.calendar).toEqual({ ...base, password: 'pw-secret', draftTtlMs: 600_000 });
    expect(parse({ ...base, passwordEnv: 'CALDAV_PASSWORD', draftTtlMs: 60_000 }).tools.calendar?.draftTtlMs).toBe(60_000);
    expect(problems(base)).toEqual(['tools.calendar.password: expected exactly one of password and passwordEnv']);
    expect(problems({ ...base, password: 'x', passwordEnv: 'Y' })).toEqual(['tools.calendar.password: expected exactly one of password and passwordEnv']);
    expect(problems({ ...base, password: 'x', calender: 'Work' })[0]).toMatch(/^tools\.calendar\.calender: unknown key, did you mean "calendar"\?/);
  });

  it("checks the URL's host against egress.allowHosts", () => {
    expect(problems({ ...base, url: 'https://caldav.example.org/', password: 'x' })).toEqual([
      'tools.calendar.url: host "caldav.example.org" is not in egress.allowHosts, expected one of 127.0.0.1, localhost, ::1',
    ]);
    expect(problems({ ...base, url: 'https://caldav.example.org/', password: 'x' }, { egress: { allowHosts: ['127.0.0.1', '*.example.org'] } })).toEqual([]);
  });

  it('--print-config masks the password and keeps the name of its variable', () => {
    const masked = maskSecrets(parse({ ...base, password: 'pw-secret' })) as { tools: { calendar: Record<string, unknown> } };
    expect(masked.tools.calendar['password']).toBe(MASK);
    const byEnv = maskSecrets(parse({ ...base, passwordEnv: 'CALDAV_PASSWORD' })) as { tools: { calendar: Record<string, unknown> } };
    expect(byEnv.tools.calendar['passwordEnv']).toBe('CALDAV_PASSWORD');
  });
});
