import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The repository's root folder. */
export const REPO = new URL('../..', import.meta.url).pathname;

/**
 * The arguments `npm start` gives node (package.json's `start`, after `node`), with the entry made
 * absolute: `['--enable-source-maps', '/…/dist/main.mjs']`. The bundle is built once per test run by
 * `test/setup/build-bundle.ts`, as `npm start`'s prestart builds it.
 */
export function npmStartNodeArgs(): string[] {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [command, ...args] = pkg.scripts.start.split(/\s+/);
  if (command !== 'node') throw new Error(`npm start runs ${command}, not node`);
  return args.map((arg) => (arg.startsWith('-') ? arg : join(REPO, arg)));
}
