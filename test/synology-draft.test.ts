/**
 * A calendar draft confirmed from Synology Chat, through the whole gateway (runtime, PGlite, the webhook)
 * against a real Radicale and a fake NAS: "내일 3시 회의 잡아줘" from a Synology user is posted back as a
 * readable question (the draft and "reply yes or no"), and the same user's next message "확인" (or "yes")
 * writes the event — also when the gateway restarted in between (the user's conversation, and with it
 * the draft, is found again in the store).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ICAL from 'ical.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import { startGateway } from '../src/transport/start-gateway.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { FakeSynologyNas } from './fakes/fake-synology-nas.js';
import { CALENDAR_NAME, CALENDAR_SLUG, FIXED_NOW, seedCalendar, TIME_ZONE } from './helpers/calendar-seeds.js';
import { testConfig } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';
import { startRadicale, type Radicale } from './helpers/start-radicale.js';

const TOKEN = 'synology-draft-outgoing-token';
const DRAFT = { title: '회의', date: '2026-11-26', time: '15:00' };
const CREATE = JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_draft', params: DRAFT });
const QUESTION = "새 일정: 회의, 2026-11-26 15:00\n\n이대로 등록할까요? '네' 또는 '아니요'로 답해 주세요.";

let radicale: Radicale;
let small: FakeBackend;
let large: FakeBackend;
let nas: FakeSynologyNas;
const running: Array<{ close(): Promise<void> }> = [];
const dirs: string[] = [];

beforeAll(async () => {
  radicale = await startRadicale();
  await seedCalendar(radicale);
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => (text.includes('잡아줘') ? CREATE : JSON.stringify({ action: 'direct', response: '무슨 말씀인지 모르겠어요.' })),
    phrase: (content) => ({ content }),
  });
  nas = await FakeSynologyNas.start();
}, 30_000);

afterEach(async () => {
  for (const gateway of running.splice(0)) await gateway.close();
});

afterAll(async () => {
  await nas?.close();
  await radicale?.close();
  await small?.close();
  await large?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A gateway with the calendar tool and the Synology bot on `dataDir`, its clock fixed on Wednesday noon in Seoul. */
async function start(dataDir: string): Promise<{ url: string; close(): Promise<void> }> {
  const config = testConfig(
    {
      classifier: small,
      reasoner: large,
      config: {
        persona: { name: '이드', locale: 'ko', timeZone: TIME_ZONE },
        tools: { calendar: { url: radicale.url, user: radicale.user, password: radicale.password, calendar: CALENDAR_NAME } },
        synology: { token: TOKEN, incomingUrl: nas.url, mode: 'chatbot' },
      },
    },
    dataDir,
  );
  const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const runtime = createRuntime(config, { log, now: () => FIXED_NOW });
  await runtime.start();
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0 });
  let closed = false;
  const handle = {
    url: gateway.url,
    close: async () => {
      if (closed) return;
      closed = true;
      // As `npm start` stops: nothing runs, so the grace only lets a reply on its way finish (and its row
      // go) before the store closes; a reply cut short would be posted again by the next start.
      await runtime.stop(10_000, { beforeClose: (untilMs) => gateway.settle(untilMs) });
      await gateway.close();
    },
  };
  running.push(handle);
  return handle;
}

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-synology-draft-'));
  dirs.push(dir);
  return dir;
}

/** Sends a Synology message and waits for the reply posted for that user. */
async function say(url: string, userId: string, text: string): Promise<string> {
  const before = nas.posts.filter((post) => post.payload.user_ids?.[0] === Number(userId)).length;
  const response = await fetch(`${url}/synology/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: TOKEN, user_id: userId, username: 'alice', channel_id: '7', post_id: '1', timestamp: '1', text }).toString(),
  });
  expect(response.status).toBe(200);
  let reply = '';
  await vi.waitFor(
    () => {
      const mine = nas.posts.filter((post) => post.payload.user_ids?.[0] === Number(userId));
      expect(mine.length).toBe(before + 1);
      reply = mine.at(-1)!.payload.text;
    },
    { timeout: 60_000 },
  );
  return reply;
}

/** The events Radicale holds that the gateway wrote. */
function written(): ICAL.Component[] {
  return radicale
    .storedEvents(CALENDAR_SLUG)
    .map((text) => new ICAL.Component(ICAL.parse(text)).getFirstSubcomponent('vevent')!)
    .filter((vevent) => String(vevent.getFirstPropertyValue('uid')).endsWith('@switchboard'));
}

describe('a calendar draft confirmed from Synology Chat', () => {
  it('posts the draft as a question, and the user\'s "확인" writes the event', async () => {
    const before = written().length;
    const gateway = await start(freshDir());
    expect(await say(gateway.url, '31', '내일 3시 회의 잡아줘')).toBe(QUESTION);
    expect(written()).toHaveLength(before);
    expect(await say(gateway.url, '31', '확인')).toBe('일정을 등록했어요: 회의, 2026-11-26 15:00–16:00');
    const added = written().slice(before);
    expect(added).toHaveLength(1);
    expect(added[0]!.getFirstPropertyValue('summary')).toBe('회의');
    expect((added[0]!.getFirstPropertyValue('dtstart') as ICAL.Time).toString()).toBe('2026-11-26T06:00:00Z');
    // Another user's yes has no draft to confirm: nothing more is written.
    await say(gateway.url, '32', '확인');
    expect(written()).toHaveLength(before + 1);
  }, 300_000);

  it('"yes" after a restart between the draft and the answer still writes it (the user\'s conversation is found again)', async () => {
    const before = written().length;
    const dir = freshDir();
    const first = await start(dir);
    expect(await say(first.url, '33', '내일 3시 회의 잡아줘')).toBe(QUESTION);
    await first.close();
    const second = await start(dir);
    expect(await say(second.url, '33', 'yes')).toBe('일정을 등록했어요: 회의, 2026-11-26 15:00–16:00');
    expect(written()).toHaveLength(before + 1);
  }, 300_000);
});
