/**
 * The web page shows the flight recorder's timeline under a finished answer (web/src/job-trace.ts), read
 * with the page's token from GET /jobs/:id/trace. Real Chromium (Debian's), real gateway, fake models.
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'web-trace-test-token';
/** Generous for a loaded machine; nothing waits this long when it works. */
const WAIT_MS = 30_000;

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let browser: Browser;

beforeAll(async () => {
  [small, large] = await Promise.all([startFakeBackend(), startFakeBackend()]);
  scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }), reason: () => ({ content: ['Traced ', 'answer.'] }) });
  gateway = await startTestGateway({ classifier: small, reasoner: large, config: { auth: { tokens: [TOKEN] } } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await Promise.all([small?.close(), large?.close()]);
});

describe('the web page', () => {
  it("shows a finished job's trace: each state, its time and the event that left it", { timeout: 120_000 }, async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    context.setDefaultTimeout(WAIT_MS);
    // The token the user would have typed into the page's token form once.
    await context.addInitScript((token) => {
      // This project's tsconfig has no DOM types.
      (globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } }).localStorage.setItem('switchboard.token', token);
    }, TOKEN);
    const page = await context.newPage();
    try {
      await page.goto(gateway.url);
      await page.locator('#connection[data-state="open"]').waitFor();
      await page.locator('#message').fill('how did this run?');
      await page.keyboard.press('Enter');
      const answer = page.locator('li[data-role="answer"][data-state="done"]');
      await answer.waitFor();
      const trace = answer.locator('details.trace');
      await trace.locator('summary').click();
      const rows = trace.locator('tbody tr');
      await rows.last().waitFor();
      const cells = await rows.evaluateAll((trs) => trs.map((tr) => Array.from((tr as unknown as { cells: ArrayLike<{ textContent: string | null }> }).cells, (cell) => cell.textContent ?? '')));
      const states = cells.map(([state]) => state);
      expect(states).toEqual(['ack', 'classify.waiting', 'route.checkHealth', 'route.streaming.waiting', 'done']);
      expect(cells.find(([state]) => state === 'classify.waiting')).toEqual(['classify.waiting', expect.stringMatching(/^\d+ ms$/), 'infer.done']);
      expect(cells.at(-1)).toEqual(['done', 'final', '']);
      // Only state names and event types: not the message, not the answer.
      const text = await trace.textContent();
      expect(text).not.toContain('how did this run');
      expect(text).not.toContain('Traced');
    } finally {
      await context.close();
    }
  });
});
