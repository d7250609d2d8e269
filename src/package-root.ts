import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder of Switchboard's `package.json` (where `prompts/` lives), found by walking up from this
 * module. The same code runs from `src/` (tests, scripts) and bundled into `dist/main.mjs` (`npm start`),
 * at different depths, so no fixed `../..` fits both.
 */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}
