/**
 * The calendar through the whole gateway (runtime, PGlite, WebSocket) against a real Radicale, with the
 * fake classifier answering "내일 3시 회의 잡아줘" with a `create_draft` action and a fixed clock
 * (Wednesday 2026-11-25, 12:00 in Seoul): the draft is stored and `confirm`ed, "확인" writes the event
 * at 15:00 Seoul (06:00 UTC), "취소" writes nothing, a restart between draft and answer still writes
 * it, an expired draft does not. "오늘 일정" and "이번 주 일정" (pre-routed) list the seeded events,
 * the weekly one included. Radicale stopped mid-run ends the job with a readable `tool_failed`, frozen
 * (SIGSTOP) with `tool_timeout`, and the next job, with Radicale back, works. No log line carries the password.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import ICAL from 'ical.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { CALENDAR_NAME, CALENDAR_SLUG, FIXED_NOW, seedCalendar, THIS_WEEK, TIME_ZONE, TODAY } from './helpers/calendar-seeds.js';
import { startTestGateway, TestClient, type EventFrame, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';
import { startRadicale, type Radicale } from './helpers/start-radicale.js';
import { TOOL_PAYLOAD_MAX_CHARS, TRUNCATED_MARKER } from '../src/actors/tools/tool-result.js';

const DRAFT = { title: '회의', date: '2026-11-26', time: '15:00' };
const CREATE = JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_draft', params: DRAFT });

let radicale: Radicale;
let small: FakeBackend;
let large: FakeBackend;
let clock = FIXED_NOW;
const logLines: string[] = [];
const open: Array<{ gateway: TestGateway; client: TestClient }> = [];

beforeAll(async () => {
  radicale = await startRadicale();
  await seedCalendar(radicale);
  // A crowded day: its listing is longer than the 2000 characters a model is given.
  for (let i = 0; i < 30; i += 1) {
    const hour = String(Math.floor(i / 2)).padStart(2, '0');
    const minute = i % 2 === 0 ? '00' : '30';
    const body = [`UID:crowded-${i}`, 'DTSTAMP:20261001T000000Z', `DTSTART:20261224T${hour}${minute}00Z`, 'DURATION:PT30M', `SUMMARY:Christmas shift ${i + 1}`];
    await radicale.put(CALENDAR_SLUG, `crowded-${i}.ics`, ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', ...body, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n'));
  }
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => {
      if (text.includes('잡아줘')) return CREATE;
      if (text.includes('크리스마스')) return JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'search', params: { date_from: '2026-12-24' } });
      return JSON.stringify({ action: 'direct', response: '무슨 말씀인지 모르겠어요.' });
    },
    // The phrasing model echoes what it was given: the answer shows the tool's payload.
    phrase: (content) => ({ content }),
  });
}, 30_000);

afterEach(async () => {
  for (const { gateway, client } of open.splice(0)) {
    client.socket.close();
    await gateway.close();
  }
  clock = FIXED_NOW;
});

afterAll(async () => {
  await radicale?.close();
  await small?.close();
  await large?.close();
  // Credentials never reach the logs, whatever happened above.
  expect(logLines.length).toBeGreaterThan(0);
  for (const line of logLines) {
    expect(line).not.toContain(radicale.password);
    expect(line).not.toContain(Buffer.from(`${radicale.user}:${radicale.password}`).toString('base64'));
  }
});

async function start(options: { dataDir?: string; draftTtlMs?: number } = {}): Promise<{ gateway: TestGateway; client: TestClient }> {
  const log = pino({ level: 'debug' }, new Writable({ write: (chunk, _encoding, done) => (logLines.push(String(chunk)), done()) }));
  const gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    config: {
      persona: { name: '이드', locale: 'ko', timeZone: TIME_ZONE },
      tools: {
        calendar: {
          url: radicale.url,
          user: radicale.user,
          password: radicale.password,
          calendar: CALENDAR_NAME,
          ...(options.draftTtlMs ? { draftTtlMs: options.draftTtlMs } : {}),
        },
      },
    },
    deps: { now: () => clock, log },
  });
  const client = await TestClient.connect(gateway.wsUrl);
  const started = { gateway, client };
  open.push(started);
  return started;
}

async function ask(client: TestClient, text: string, conversationId?: string) {
  const { jobId, conversationId: conversation } = await client.chat(text, conversationId ? { conversationId } : {});
  const events = await client.finished(jobId);
  return { jobId, conversationId: conversation, events, answer: client.answer(jobId), terminal: events.at(-1)! };
}

/** The events Radicale holds that the test did not seed: those the gateway wrote. */
function written(): ICAL.Component[] {
  return radicale
    .storedEvents(CALENDAR_SLUG)
    .map((text) => new ICAL.Component(ICAL.parse(text)).getFirstSubcomponent('vevent')!)
    .filter((vevent) => String(vevent.getFirstPropertyValue('uid')).endsWith('@switchboard'));
}

async function draftIn(client: TestClient) {
  const run = await ask(client, '내일 3시 회의 잡아줘');
  const confirm = run.events.find((event: EventFrame) => event.event === 'confirm');
  expect(confirm?.data).toEqual({ draft: { ...DRAFT, uid: expect.stringMatching(/@switchboard$/) } });
  expect(run.terminal.event).toBe('done');
  return run;
}

describe('a new event: draft, then the user answers', () => {
  it('"확인" writes the event at 15:00 in Seoul; nothing is written before', async () => {
    const before = written().length;
    const { client } = await start();
    const draft = await draftIn(client);
    expect(written()).toHaveLength(before);
    const yes = await ask(client, '확인', draft.conversationId);
    expect(yes.terminal.event).toBe('done');
    expect(yes.answer).toBe('일정을 등록했어요: 회의, 2026-11-26 15:00–16:00');
    const added = written().slice(before);
    expect(added).toHaveLength(1);
    expect(added[0]!.getFirstPropertyValue('summary')).toBe('회의');
    expect(added[0]!.getFirstPropertyValue('uid')).toBe((draft.events.find((event) => event.event === 'confirm')!.data['draft'] as { uid: string }).uid);
    expect((added[0]!.getFirstPropertyValue('dtstart') as ICAL.Time).toString()).toBe('2026-11-26T06:00:00Z');
    expect((added[0]!.getFirstPropertyValue('dtend') as ICAL.Time).toString()).toBe('2026-11-26T07:00:00Z');
    // The draft is gone: another "확인" is just a message, and writes nothing.
    await ask(client, '확인', draft.conversationId);
    expect(written()).toHaveLength(before + 1);
  });

  it('"취소" drops the draft and writes nothing', async () => {
    const before = written().length;
    const { client } = await start();
    const draft = await draftIn(client);
    const no = await ask(client, '취소', draft.conversationId);
    expect(no.terminal.event).toBe('done');
    await ask(client, '확인', draft.conversationId);
    expect(written()).toHaveLength(before);
  });

  it('anything else is a new message and the draft stays', async () => {
    const before = written().length;
    const { client } = await start();
    const draft = await draftIn(client);
    const other = await ask(client, '그런데 날씨는 어때?', draft.conversationId);
    expect(other.answer).toBe('무슨 말씀인지 모르겠어요.');
    await ask(client, 'yes', draft.conversationId);
    expect(written()).toHaveLength(before + 1);
  });

  it('a restart between the draft and the answer: the draft survives and "확인" writes it', async () => {
    const before = written().length;
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-calendar-restart-'));
    try {
      const first = await start({ dataDir });
      const draft = await draftIn(first.client);
      first.client.socket.close();
      await first.gateway.close({ keepData: true });
      open.splice(open.indexOf(first), 1);
      const second = await start({ dataDir });
      const yes = await ask(second.client, '확인', draft.conversationId);
      expect(yes.terminal.event).toBe('done');
      expect(written()).toHaveLength(before + 1);
    } finally {
      for (const { gateway, client } of open.splice(0)) {
        client.socket.close();
        await gateway.close({ keepData: true });
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a yes while Radicale is down ends with tool_failed and keeps the draft: the next yes writes it once', async () => {
    const before = written().length;
    const { client } = await start();
    const draft = await draftIn(client);
    await radicale.stop();
    try {
      const down = await ask(client, '확인', draft.conversationId);
      expect(down.terminal.event).toBe('error');
      expect(down.terminal.data).toMatchObject({ reason: 'tool_failed' });
    } finally {
      await radicale.start();
    }
    expect((await ask(client, '확인', draft.conversationId)).terminal.event).toBe('done');
    await ask(client, '확인', draft.conversationId);
    expect(written()).toHaveLength(before + 1);
  });

  it('an expired draft is not written', async () => {
    const before = written().length;
    const { client } = await start({ draftTtlMs: 60_000 });
    const draft = await draftIn(client);
    clock = new Date(FIXED_NOW.getTime() + 60_001);
    const late = await ask(client, '확인', draft.conversationId);
    expect(late.terminal.event).toBe('done');
    expect(written()).toHaveLength(before);
  });
});

describe('reading the calendar through the gateway', () => {
  /** The tool payload the phrasing model was given (it echoes its request). */
  const payloadOf = (answer: string): unknown => {
    const payload = answer.slice(answer.indexOf('[tool_result]\n') + '[tool_result]\n'.length);
    expect(payload.length).toBeLessThanOrEqual(2_000);
    return JSON.parse(payload);
  };

  it('"오늘 일정" lists today in Seoul, the weekly event that started weeks ago included', async () => {
    const { client } = await start();
    const today = await ask(client, '오늘 일정');
    expect(today.terminal.event).toBe('done');
    expect(payloadOf(today.answer)).toEqual(TODAY);
  });

  it('"이번 주 일정" lists Monday to Sunday', async () => {
    const { client } = await start();
    const week = await ask(client, '이번 주 일정');
    expect(week.terminal.event).toBe('done');
    const listed = payloadOf(week.answer) as Array<{ title: string }>;
    // Events written by the tests above are on Thursday too; the seeds are all there, in order.
    expect(listed.filter((event) => event.title !== '회의')).toEqual(THIS_WEEK);
  });

  it('a listing over 2000 characters is cut before a model phrases it', async () => {
    const { client } = await start();
    const crowded = await ask(client, '크리스마스에 뭐 있어?');
    expect(crowded.terminal.event).toBe('done');
    const payload = crowded.answer.slice(crowded.answer.indexOf('[tool_result]\n') + '[tool_result]\n'.length);
    expect(payload.endsWith(TRUNCATED_MARKER)).toBe(true);
    expect(payload).toHaveLength(TOOL_PAYLOAD_MAX_CHARS + TRUNCATED_MARKER.length);
    // Sorted by local time (09:00 in Seoul is the first, 00:00 UTC).
    expect(payload.startsWith('[{"title":"Christmas shift 1","recurring":false,"date":"2026-12-24","time":"09:00"')).toBe(true);
  });

  it('passwordEnv naming an unset variable: the start says so, and a calendar call fails with a sentence naming it', async () => {
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _encoding, done) => (logLines.push(String(chunk)), done()) }));
    const from = logLines.length;
    const gateway = await startTestGateway({
      classifier: small,
      reasoner: large,
      config: {
        persona: { name: '이드', locale: 'ko', timeZone: TIME_ZONE },
        tools: { calendar: { url: radicale.url, user: radicale.user, passwordEnv: 'SB_TEST_UNSET_CALDAV_PASSWORD' } },
      },
      deps: { now: () => clock, log },
    });
    const client = await TestClient.connect(gateway.wsUrl);
    open.push({ gateway, client });
    expect(logLines.slice(from).filter((line) => line.includes('SB_TEST_UNSET_CALDAV_PASSWORD is not set'))).toHaveLength(1);
    const failed = await ask(client, '오늘 일정');
    expect(failed.terminal.data).toMatchObject({ reason: 'tool_failed', message: expect.stringContaining('SB_TEST_UNSET_CALDAV_PASSWORD') });
  });

  it('Radicale frozen mid-run (SIGSTOP): the job ends with tool_timeout at the 10 s tool limit; thawed, the next job works', async () => {
    const { client } = await start();
    expect((await ask(client, '오늘 일정')).terminal.event).toBe('done');
    radicale.freeze();
    try {
      const hung = await ask(client, '오늘 일정');
      expect(hung.terminal.event).toBe('error');
      expect(hung.terminal.data).toMatchObject({ reason: 'tool_timeout' });
      expect(logLines.filter((line) => line.includes(hung.jobId) && line.includes('a tool timed out'))).toHaveLength(1);
    } finally {
      radicale.thaw();
    }
    const back = await ask(client, '오늘 일정');
    expect(back.terminal.event).toBe('done');
    expect(payloadOf(back.answer)).toEqual(TODAY);
  }, 30_000);

  it('Radicale stopped mid-run: the job ends with a readable tool_failed; with it back the next job works', async () => {
    const { client } = await start();
    await radicale.stop();
    try {
      const down = await ask(client, '오늘 일정');
      expect(down.terminal.event).toBe('error');
      expect(down.terminal.data).toEqual({ reason: 'tool_failed', message: '일정 서버를 쓸 수 없어요: unreachable (connection refused, ECONNREFUSED).' });
      const logged = logLines.filter((line) => line.includes(down.jobId) && line.includes('a tool failed'));
      expect(logged).toHaveLength(1);
      expect(JSON.parse(logged[0]!)).toMatchObject({ jobId: down.jobId, reason: 'tool_failed', cause: 'unreachable (connection refused, ECONNREFUSED)' });
    } finally {
      await radicale.start();
    }
    const back = await ask(client, '오늘 일정');
    expect(back.terminal.event).toBe('done');
    expect(payloadOf(back.answer)).toEqual(TODAY);
  });
});
