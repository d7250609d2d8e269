import { mkdirSync, readFileSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allStates, stateTree } from '../scripts/state-tree.js';
import { treeToMermaid } from '../scripts/mermaid-diagram.js';
import { MACHINES } from '../scripts/visualizations.js';
import { sampleMachine } from './helpers/sample-machine.js';
import { jobMachine } from '../src/machines/job-machine.js';

/**
 * The committed diagrams as a reader's browser sees them (Debian's Chromium, offline): every Mermaid
 * file parses and renders with the real `mermaid` (its browser bundle from node_modules; in Node its
 * parser needs DOMPurify and a DOM), and the job machine's SVG shows every state's name; its screenshot
 * goes to `test-results/screenshots/` (git-ignored).
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = new URL('../test-results/screenshots/', import.meta.url).pathname;
const visualization = (file: string): URL => new URL(`../visualizations/${file}`, import.meta.url);
const mermaidBlock = (markdown: string): string => /```mermaid\n([\s\S]*?)```/.exec(markdown)?.[1] ?? '';

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe('visualizations/ in Chromium', () => {
  it('every Mermaid file parses with mermaid.parse and renders to SVG', async () => {
    const page = await browser.newPage();
    await page.setContent('<!doctype html><html><body></body></html>');
    await page.addScriptTag({ path: new URL('../node_modules/mermaid/dist/mermaid.min.js', import.meta.url).pathname });
    const diagrams = MACHINES.map(({ stem }) => ({ stem, text: mermaidBlock(readFileSync(visualization(`${stem}.md`), 'utf8')) }));
    // And parallel regions, which no machine here has yet.
    diagrams.push({ stem: 'sample-parallel', text: treeToMermaid(stateTree(sampleMachine)) });
    for (const { stem, text } of diagrams) {
      expect(text, stem).toMatch(/^stateDiagram-v2\n/);
      const outcome = await page.evaluate(
        async ({ text, id }) => {
          const { mermaid } = globalThis as unknown as {
            mermaid: { initialize(o: object): void; parse(t: string): Promise<unknown>; render(id: string, t: string): Promise<{ svg: string }> };
          };
          mermaid.initialize({ startOnLoad: false });
          try {
            const parsed = await mermaid.parse(text);
            const { svg } = await mermaid.render(id, text);
            return { parsed: parsed !== false, svg: svg.length, error: null };
          } catch (error) {
            return { parsed: false, svg: 0, error: String((error as Error).message ?? error) };
          }
        },
        { text, id: `d-${stem}` },
      );
      expect(outcome, stem).toEqual({ parsed: true, svg: expect.any(Number), error: null });
      expect(outcome.svg, stem).toBeGreaterThan(1000);
    }
    await page.close();
  }, 120_000);

  it("the job machine's SVG opens and shows every state by name (screenshot saved)", async () => {
    const page = await browser.newPage({ viewport: { width: 1800, height: 1000 } });
    // Inline in a page: Chromium's headless screenshot of a bare SVG document never finishes.
    const svg = readFileSync(visualization('job-machine.svg'), 'utf8');
    await page.setContent(`<!doctype html><html><body style="margin:0">${svg.slice(svg.indexOf('<svg'))}</body></html>`);
    const texts = await page.locator('svg text').allTextContents();
    const missing = allStates(stateTree(jobMachine))
      .filter((state) => !texts.some((text) => text.trim() === state.key))
      .map((state) => state.id);
    expect(missing).toEqual([]);
    // Fitted to the window's width: the whole machine in one picture.
    await page.evaluate("const root = document.querySelector('svg'); root.setAttribute('width', '1800'); root.removeAttribute('height');");
    await page.screenshot({ path: `${SCREENSHOTS}job-machine.png`, fullPage: true });
    await page.close();
  }, 60_000);
});
