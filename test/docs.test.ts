import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { JOB_EVENT_NAMES } from '../src/jobs/job-event.js';
import { CLIENT_FRAME_TYPES, SERVER_FRAME_TYPES, WS_ERROR_CODES } from '../src/transport/ws-frames.js';

/** The user docs in `docs/` cannot fall behind the protocol the code speaks. */
const docs = new URL('../docs/', import.meta.url);
const read = (file: string): string => readFileSync(new URL(file, docs), 'utf8');

describe('docs/', () => {
  const websocket = read('websocket.md');

  it.each([
    ['client frame type', CLIENT_FRAME_TYPES],
    ['server frame type', SERVER_FRAME_TYPES],
    ['job event', JOB_EVENT_NAMES],
    ['error code', WS_ERROR_CODES],
  ] as const)('websocket.md documents every %s in a table row of its own', (_, names) => {
    for (const name of names) expect(websocket, name).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  });

  it('every page is linked from docs/README.md and the README, and every relative link resolves', () => {
    const pages = readdirSync(docs).filter((file) => file.endsWith('.md') && file !== 'README.md');
    const index = read('README.md');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const page of pages) {
      expect(index, page).toContain(`](${page})`);
      expect(readme, page).toContain(`](docs/${page})`);
    }
    for (const page of [...pages, 'README.md']) {
      for (const [, target] of read(page).matchAll(/\]\((?!https?:)([^)#]+)\)/g)) {
        expect(() => readFileSync(new URL(target!, docs)), `${page} → ${target}`).not.toThrow();
      }
    }
  });
});
