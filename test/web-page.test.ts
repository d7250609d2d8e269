/**
 * The web chat page (`GET /`) in a real browser: Debian's Chromium driven by playwright-core, against a
 * whole gateway on port 0 (runtime, PGlite, HTTP, WebSocket) over the fake model servers and a real
 * Radicale for the calendar draft. The page sends what is typed (Enter sends, Shift+Enter is a new
 * line), streams the answer into its bubble, cancels a running answer with its Cancel button, shows a
 * calendar draft with Yes/No buttons whose yes writes the event, lists each backend in the status panel,
 * keeps the conversation over a reload (resuming a running answer with `subscribe`) until Clear, and
 * behind `auth.tokens` asks for the token — again, with a clear message, when it was wrong. Screenshots
 * at desktop (1280×800) and phone (390×844) size go to test-results/screenshots/ (git-ignored).
 * Every wait is on a DOM condition; none is a sleep.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { CALENDAR_NAME, CALENDAR_SLUG, FIXED_NOW, seedCalendar, TIME_ZONE } from './helpers/calendar-seeds.js';
import { seedDocuments, startTestGateway, testBackend, TestClient, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';
import { startRadicale, type Radicale } from './helpers/start-radicale.js';
import { createWebPage } from '../src/transport/web-page.js';
import { applyEvent } from '../web/src/apply-event.js';
import { newExchange } from '../web/src/conversation-store.js';
import { pickStrings } from '../web/src/strings.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = new URL('../test-results/screenshots/', import.meta.url).pathname;
const TOKEN = 'web-page-test-token';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** Generous: a loaded machine runs two test files at once. Nothing here waits this long when it works. */
const WAIT_MS = 30_000;
/** A browser test takes 2–6 s here; on a machine busy with other work, many times that. */
const TEST_MS = 120_000;

const DRAFT = { title: '회의', date: '2026-11-26', time: '15:00' };

let radicale: Radicale;
let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let authed: TestGateway;
let browser: Browser;
let dataDir: string | undefined;

beforeAll(async () => {
  radicale = await startRadicale();
  await seedCalendar(radicale);
  [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
  scriptModels(small, large, {
    classify: (text) =>
      text.includes('잡아줘')
        ? JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_draft', params: DRAFT })
        : JSON.stringify({ action: 'route' }),
    phrase: (content) => ({ content }),
    // "slow": a stream that never ends (one piece every 50 ms) until it is cancelled.
    reason: (text) =>
      text.includes('slow') ? { fault: 'slow_drip', content: ['drip '] } : { content: ['Hello ', 'from ', 'the ', 'reasoner.'], chunkDelayMs: 5 },
  });
  // The tests' short backend timeouts, made long: a slow answer runs until the test cancels it, and a
  // machine busy with other work must not end it first.
  const patient = (fake: FakeBackend) => ({ ...testBackend(fake), timeoutMs: 60_000, streamDeadlineMs: 120_000, idleTimeoutMs: 60_000 });
  const backends = { small: patient(small), large: patient(large) };
  const tools = { calendar: { url: radicale.url, user: radicale.user, password: radicale.password, calendar: CALENDAR_NAME } };
  const persona = { name: '이드', locale: 'ko', timeZone: TIME_ZONE };
  // The calendar tests' fixed "now" (Wednesday 2026-11-25 in Seoul), so "tomorrow" is the draft's date.
  const deps = { now: () => FIXED_NOW };
  dataDir = mkdtempSync(join(tmpdir(), 'sb-web-page-'));
  await seedDocuments(dataDir, [{ id: 'plans/budget.md', title: 'Budget 2026', body: 'The budget for 2026 is 12 000 euros for hardware.' }]);
  [gateway, authed] = await Promise.all([
    startTestGateway({ classifier: small, reasoner: large, dataDir, config: { backends, tools, persona }, deps }),
    startTestGateway({ classifier: small, reasoner: large, config: { backends, auth: { tokens: [TOKEN] } } }),
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all([gateway?.close(), authed?.close()]);
  await Promise.all([small?.close(), large?.close(), radicale?.close()]);
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

/** A fresh browser profile (its own localStorage) at `size`, in `locale`. */
async function openPage(url: string, options: { locale?: string; size?: typeof DESKTOP } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ locale: options.locale ?? 'en-US', viewport: options.size ?? DESKTOP });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  await page.goto(url);
  return { context, page };
}

async function connected(page: Page): Promise<void> {
  await page.locator('#connection[data-state="open"]').waitFor();
}

/** Types `text` into the message box and presses Enter, as a keyboard user does. */
async function send(page: Page, text: string): Promise<void> {
  const box = page.locator('#message');
  await box.focus();
  await page.keyboard.insertText(text);
  await page.keyboard.press('Enter');
}

/** What the waits below read of the page's DOM (this project's tsconfig has no DOM types). */
interface PageDocument {
  querySelector(selector: string): { textContent: string | null } | null;
}

/**
 * Waits until the running answer's text is longer than `length` and starts with `prefix`. A function,
 * not a string: the page's CSP forbids eval, and a string would be eval'ed in it.
 */
async function runningText(page: Page, length: number, prefix = ''): Promise<void> {
  await page.waitForFunction(
    ([min, start]) => {
      const doc = (globalThis as unknown as { document: PageDocument }).document;
      const text = doc.querySelector('li[data-role="answer"][data-state="running"] .text')?.textContent ?? '';
      return text.length > min && text.startsWith(start);
    },
    [length, prefix] as const,
  );
}

const answers = (page: Page): Locator => page.locator('li[data-role="answer"]');

/** Waits for the nth answer (from 0) to end in `state` and returns its bubble. */
async function answerEnds(page: Page, nth: number, state: 'done' | 'cancelled' | 'error'): Promise<Locator> {
  const answer = answers(page).nth(nth);
  await answer.and(page.locator(`[data-state="${state}"]`)).waitFor();
  return answer;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: false });
}

describe('GET / and its files', { timeout: TEST_MS }, () => {
  it('serves the built page with its content type, a strict CSP, nosniff and no-cache; other methods 405, unknown files 404', async () => {
    const page = await fetch(`${gateway.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("connect-src 'self' ws: wss:");
    expect(csp).not.toContain('unsafe-inline');
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/app.js">');
    // Nothing from elsewhere: the page works offline.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    for (const [path, type] of [
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/app.css', 'text/css; charset=utf-8'],
      ['/favicon.svg', 'image/svg+xml'],
    ] as const) {
      const asset = await fetch(`${gateway.url}${path}`);
      expect(asset.status, path).toBe(200);
      expect(asset.headers.get('content-type'), path).toBe(type);
      expect(asset.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
    const etag = page.headers.get('etag')!;
    expect((await fetch(`${gateway.url}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const head = await fetch(`${gateway.url}/app.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${gateway.url}/`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${gateway.url}/app.jsx`)).status).toBe(404);
    expect((await fetch(`${gateway.url}/index.html`)).status).toBe(404);
    // A path is never a file path: nothing outside the fixed list, however it is spelt.
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/app.js/../../package.json', '//etc/passwd']) {
      expect(await rawGet(gateway.url, path), path).toBe(404);
    }
  });

  it('without the build: 503 with a one-line JSON body saying how to build it', async () => {
    const missing = mkdtempSync(join(tmpdir(), 'sb-web-missing-'));
    const webPage = createWebPage({ dir: missing });
    const server = createHttpServer((req, res) => {
      if (!webPage.handle(req, res, req.url ?? '/')) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(response.status).toBe(503);
      const body = await response.text();
      expect(body).not.toContain('\n');
      expect(JSON.parse(body)).toEqual({ error: { type: 'web_page_missing', message: expect.stringContaining('npm run build') } });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(missing, { recursive: true, force: true });
    }
  });

  it('behind auth the page itself is open, its data is not', async () => {
    expect((await fetch(`${authed.url}/`)).status).toBe(200);
    expect((await fetch(`${authed.url}/app.js`)).status).toBe(200);
    expect((await fetch(`${authed.url}/status`)).status).toBe(401);
  });
});

describe('the page in Chromium', { timeout: TEST_MS }, () => {
  it('sends with Enter (Shift+Enter is a new line), streams the answer, and lists each backend in the status panel', async () => {
    const { context, page } = await openPage(gateway.url);
    try {
      await connected(page);
      await page.locator('#status-list li[data-backend="small"]').waitFor();
      await page.locator('#status-list li[data-backend="large"]').waitFor();
      expect(await page.locator('#status-list li').count()).toBe(2);
      expect(await page.locator('#status-jobs').textContent()).toMatch(/^Jobs: \d+ running, \d+ waiting$/);

      const box = page.locator('#message');
      await box.focus();
      await page.keyboard.insertText('line one');
      await page.keyboard.press('Shift+Enter');
      await page.keyboard.insertText('line two');
      expect(await box.inputValue()).toBe('line one\nline two');
      await page.keyboard.press('Enter');
      expect(await box.inputValue()).toBe('');
      const answer = await answerEnds(page, 0, 'done');
      expect(await page.locator('li[data-role="user"] .text').first().textContent()).toBe('line one\nline two');
      expect(await answer.locator('.text').textContent()).toBe('Hello from the reasoner.');
      expect(await answer.locator('.cancel').isHidden()).toBe(true);
      // The model got the message as typed, newline included.
      expect(JSON.stringify(large.chatRequests.at(-1)!.body!.messages)).toContain('line one\\nline two');
      await screenshot(page, 'desktop-answer');
    } finally {
      await context.close();
    }
  });

  it('streams a slow answer piece by piece and cancels it with its Cancel button (keyboard only): shown as cancelled', async () => {
    const { context, page } = await openPage(gateway.url);
    try {
      await connected(page);
      await send(page, 'a slow one please');
      const answer = answers(page).first();
      // Several pieces arrived while the job still runs: the answer streams.
      await runningText(page, 'drip drip drip'.length - 1, 'drip drip drip');
      // The status panel is live: a later poll shows the running job and the reasoner's busy slot.
      await page.locator('#status-jobs', { hasText: 'Jobs: 1 running, 0 waiting' }).waitFor();
      await page.locator('#status-list li[data-backend="large"] .queue', { hasText: '1 running, 0 waiting' }).waitFor();
      const cancel = answer.locator('button.cancel');
      await cancel.focus();
      await page.keyboard.press('Enter');
      await answerEnds(page, 0, 'cancelled');
      expect(await answer.locator('.notice').textContent()).toBe('Cancelled.');
      expect(await cancel.isHidden()).toBe(true);
      // Focus did not vanish with the button: it is back in the message box.
      expect(await page.evaluate('document.activeElement.id')).toBe('message');
      // The model server's request was aborted.
      expect((await large.waitForClientAbort()).path).toBe('/v1/chat/completions');
    } finally {
      await context.close();
    }
  });

  it('in Korean: a calendar draft with 네/아니요 buttons; 네 sends the yes and the event is written', async () => {
    const before = radicale.storedEvents(CALENDAR_SLUG).length;
    const { context, page } = await openPage(gateway.url, { locale: 'ko-KR' });
    try {
      expect(await page.locator('html').getAttribute('lang')).toBe('ko');
      expect(await page.locator('#composer button[type="submit"]').textContent()).toBe('보내기');
      await connected(page);
      await send(page, '내일 3시 회의 잡아줘');
      const draft = (await answerEnds(page, 0, 'done')).locator('.draft');
      expect(await draft.locator('dt').allTextContents()).toEqual(['제목', '날짜', '시간']);
      expect(await draft.locator('dd').allTextContents()).toEqual(['회의', '2026-11-26', '15:00']);
      await screenshot(page, 'desktop-draft-ko');
      await page.setViewportSize(PHONE);
      await screenshot(page, 'phone-draft-ko');
      await page.setViewportSize(DESKTOP);
      expect(radicale.storedEvents(CALENDAR_SLUG)).toHaveLength(before);

      await draft.getByRole('button', { name: '네' }).click();
      const written = await answerEnds(page, 1, 'done');
      expect(await page.locator('li[data-role="user"] .text').nth(1).textContent()).toBe('네');
      expect(await written.locator('.text').textContent()).toBe('일정을 등록했어요: 회의, 2026-11-26 15:00–16:00');
      expect(radicale.storedEvents(CALENDAR_SLUG)).toHaveLength(before + 1);
      // Answered: the buttons are gone.
      expect(await draft.locator('button').count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it('a reload keeps the conversation and continues it, resumes a running answer; Clear forgets it', async () => {
    const { context, page } = await openPage(gateway.url, { size: PHONE });
    try {
      await connected(page);
      await send(page, 'remember this');
      await answerEnds(page, 0, 'done');
      await page.reload();
      await connected(page);
      expect(await page.locator('li[data-role="user"] .text').allTextContents()).toEqual(['remember this']);
      expect(await answers(page).first().locator('.text').textContent()).toBe('Hello from the reasoner.');

      // The next message continues the same conversation: the model sees the earlier turn.
      await send(page, 'and now a slow one');
      await runningText(page, 0);
      const lastRequest = JSON.stringify(large.chatRequests.at(-1)!.body!.messages);
      expect(lastRequest).toContain('remember this');
      expect(lastRequest).toContain('Hello from the reasoner.');
      await screenshot(page, 'phone-streaming');

      // Reloaded mid-answer: the page subscribes after the last seq it kept and the answer goes on.
      const shown = (await answers(page).nth(1).locator('.text').textContent())!.length;
      await page.reload();
      await connected(page);
      await runningText(page, shown + 10);
      const text = (await answers(page).nth(1).locator('.text').textContent())!;
      expect(text).toMatch(/^(drip )+/);
      await answers(page).nth(1).locator('button.cancel').click();
      await answerEnds(page, 1, 'cancelled');
      // Nothing doubled or missed across the reload.
      expect(await answers(page).nth(1).locator('.text').textContent()).toBe(await journaledAnswer(await storedJobId(page, 1)));

      await page.locator('#clear').click();
      expect(await page.locator('#log li').count()).toBe(0);
      expect(await page.locator('#empty').isVisible()).toBe(true);
      expect(await page.evaluate('localStorage.getItem("switchboard.conversation")')).toBeNull();
      await page.reload();
      await connected(page);
      expect(await page.locator('#log li').count()).toBe(0);
      // A new conversation: the model sees none of the old one.
      await send(page, 'fresh start');
      await answerEnds(page, 0, 'done');
      expect(JSON.stringify(large.chatRequests.at(-1)!.body!.messages)).not.toContain('remember this');
    } finally {
      await context.close();
    }
  });

  it('the connection drops mid-answer: the page reconnects, subscribes after the last seq it saw, and shows the whole answer once', async () => {
    const proxy = await startProxy(gateway.url);
    const { context, page } = await openPage(proxy.url);
    try {
      await connected(page);
      expect(proxy.upgrades()).toBe(1);
      await send(page, 'slow, and then the line breaks');
      await runningText(page, 'drip drip'.length);
      const shown = (await answers(page).first().locator('.text').textContent())!.length;
      proxy.dropAll();
      // A new socket through the same address, and the answer goes on growing there.
      await proxy.waitForUpgrades(2);
      await connected(page);
      await runningText(page, shown + 10);
      await answers(page).first().locator('button.cancel').click();
      await answerEnds(page, 0, 'cancelled');
      // Nothing doubled or missed across the drop: the page shows what the journal holds.
      const jobId = await storedJobId(page, 0);
      expect(await answers(page).first().locator('.text').textContent()).toBe(await journaledAnswer(jobId));
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('a document search lists its sources under the answer', async () => {
    const { context, page } = await openPage(gateway.url);
    try {
      await connected(page);
      await send(page, 'search documents for budget');
      const answer = await answerEnds(page, 0, 'done');
      expect(await answer.locator('.sources h3').textContent()).toBe('Sources');
      expect(await answer.locator('.sources li').allTextContents()).toEqual(['Budget 2026']);
    } finally {
      await context.close();
    }
  });

  it('behind auth.tokens: asks for the token, says so when it is wrong, then works and keeps it over a reload', async () => {
    const { context, page } = await openPage(authed.url, { size: PHONE });
    try {
      const form = page.locator('#token-form');
      await form.waitFor();
      expect(await page.locator('#token-message').textContent()).toBe('This gateway needs an access token. It is kept in this browser.');
      // The cursor is already in the token field.
      expect(await page.evaluate('document.activeElement.id')).toBe('token');
      await screenshot(page, 'phone-token');
      await page.keyboard.insertText('not-the-token');
      await page.keyboard.press('Enter');
      await page.locator('#token-message.refused').waitFor();
      await form.waitFor();
      expect(await page.locator('#token-message').textContent()).toBe('That token was not accepted. Check it and try again.');

      await page.locator('#token').fill(TOKEN);
      await page.locator('#token-form button[type="submit"]').click();
      await connected(page);
      expect(await form.isHidden()).toBe(true);
      await send(page, 'hello behind auth');
      expect(await (await answerEnds(page, 0, 'done')).locator('.text').textContent()).toBe('Hello from the reasoner.');

      await page.reload();
      await connected(page);
      expect(await form.isHidden()).toBe(true);
      // Folded on a phone: attached, not visible.
      await page.locator('#status-list li[data-backend="large"]').waitFor({ state: 'attached' });
    } finally {
      await context.close();
    }
  });
});

describe('the page when the model servers are down', { timeout: TEST_MS }, () => {
  // Last in the file: the gateway remembers the backends as down until their next health probe.
  it('shows the failed job as a sentence, not a code', async () => {
    const { context, page } = await openPage(gateway.url);
    await Promise.all([small.setDown(true), large.setDown(true)]);
    try {
      await connected(page);
      await send(page, 'anyone there?');
      const answer = await answerEnds(page, 0, 'error');
      expect(await answer.locator('.error').textContent()).toBe('The model server cannot be reached right now. Try again later.');
      await screenshot(page, 'desktop-error');
    } finally {
      await Promise.all([small.setDown(false), large.setDown(false)]);
      await context.close();
    }
  });
});

describe('applyEvent (the page applying job events to an answer)', () => {
  const en = pickStrings('en-GB');
  const ko = pickStrings('ko-KR');
  const at = (seq: number, event: string, data: Record<string, unknown> = {}) => ({ type: 'event' as const, jobId: 'j', seq, event, data });

  it('notices while waiting, the chunks, sources, a draft and the end; a replayed seq is skipped', () => {
    const [, answer] = newExchange('m1', 'hello');
    answer.state = 'running';
    expect(applyEvent(answer, at(1, 'ack'), en)).toBe(true);
    applyEvent(answer, at(2, 'queued', { position: 3 }), en);
    expect(answer.notice).toBe('Waiting in line (position 3)…');
    applyEvent(answer, at(3, 'processing', { message: 'Thinking…' }), en);
    expect(answer.notice).toBe('Thinking…');
    applyEvent(answer, at(4, 'result', { content: 'Hel' }), en);
    expect(answer.notice).toBeNull();
    // A replay after a resubscribe may cross the live stream: the same seq is applied once.
    expect(applyEvent(answer, at(4, 'result', { content: 'Hel' }), en)).toBe(false);
    applyEvent(answer, at(5, 'processing', { message: 'Still writing…' }), en);
    expect(answer.notice).toBeNull();
    applyEvent(answer, at(6, 'result', { content: 'lo' }), en);
    applyEvent(answer, at(7, 'sources', { items: [{ id: 'a', title: 'A' }, 'junk'] }), en);
    applyEvent(answer, at(8, 'confirm', { draft: { title: 'Dentist' } }), en);
    applyEvent(answer, at(9, 'done'), en);
    expect(answer).toMatchObject({ state: 'done', text: 'Hello', lastSeq: 9, sources: [{ id: 'a', title: 'A' }], draft: { title: 'Dentist' } });
  });

  it('an error is a sentence in the page language; an unknown reason keeps the gateway own sentence', () => {
    const [, known] = newExchange('m2', 'x');
    applyEvent(known, at(1, 'error', { reason: 'tool_timeout', message: 'ignored' }), ko);
    expect(known).toMatchObject({ state: 'error', error: '도구(캘린더, 메일, 문서)의 응답이 너무 늦었어요.' });
    const [, unknown] = newExchange('m3', 'x');
    applyEvent(unknown, at(1, 'error', { reason: 'something_new', message: 'The gateway says why.' }), en);
    expect(unknown.error).toBe('The gateway says why.');
    const [, lost] = newExchange('m4', 'x');
    lost.state = 'error';
    lost.error = en.lost;
    // A resubscribe first answered unknown_job and then found after all: live again.
    applyEvent(lost, at(5, 'result', { content: 'more' }), en);
    expect(lost).toMatchObject({ state: 'running', error: null });
    expect(pickStrings(undefined).lang).toBe('en');
    expect(pickStrings('KO').lang).toBe('ko');
  });
});

describe('web/', () => {
  it('typechecks (its own tsconfig: DOM, no Node types)', () => {
    const tsc = new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname;
    const project = new URL('../web/tsconfig.json', import.meta.url).pathname;
    expect(existsSync(project)).toBe(true);
    const result = spawnSync(process.execPath, [tsc, '--noEmit', '-p', project], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  }, TEST_MS);
});

/** The job id of the nth answer, as the page keeps it in localStorage. */
async function storedJobId(page: Page, nth: number): Promise<string> {
  const stored = JSON.parse(String(await page.evaluate('localStorage.getItem("switchboard.conversation")'))) as {
    messages: Array<{ role: string; jobId?: string }>;
  };
  const jobId = stored.messages.filter((message) => message.role === 'assistant')[nth]?.jobId;
  if (typeof jobId !== 'string') throw new Error(`no job id stored for answer ${nth}`);
  return jobId;
}

/** The answer of a finished job as the gateway journaled it (its `result` chunks, replayed by `subscribe`). */
async function journaledAnswer(jobId: string): Promise<string> {
  const client = await TestClient.connect(gateway.wsUrl);
  try {
    client.send({ type: 'subscribe', jobId });
    await client.finished(jobId);
    return client.answer(jobId);
  } finally {
    client.close();
  }
}

/**
 * A TCP relay on a loopback port in front of `target`: the page is loaded through it, and `dropAll`
 * breaks every connection at once (a network drop) while the relay keeps listening for the reconnect.
 * It counts the WebSocket upgrades that pass.
 */
async function startProxy(target: string) {
  const { hostname, port } = new URL(target);
  const open = new Set<Socket>();
  let upgrades = 0;
  let onUpgrade: (() => void) | null = null;
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    open.add(client).add(upstream);
    client.once('data', (head: Buffer) => {
      if (!head.toString('latin1').startsWith('GET /ws')) return;
      upgrades += 1;
      onUpgrade?.();
    });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        open.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    upgrades: () => upgrades,
    waitForUpgrades: (count: number) =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (upgrades < count) return;
          onUpgrade = null;
          resolve();
        };
        onUpgrade = check;
        check();
      }),
    dropAll: () => {
      for (const socket of open) socket.destroy();
    },
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** GETs `path` exactly as written (fetch would normalize `..` away) and returns the status. */
function rawGet(base: string, path: string): Promise<number> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}
