// @ts-check
/**
 * Builds the web chat page into `dist/web/` (served by src/transport/web-page.ts at `GET /`): the
 * TypeScript under `web/src/` bundled by esbuild into one `app.js` for browsers, and the static files
 * copied beside it. Nothing is fetched from elsewhere at run time: the page works offline.
 */
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';

/** The files copied as they are; `app.js` is the bundle. web-page.ts serves exactly these. */
const STATIC_FILES = ['index.html', 'app.css', 'favicon.svg'];

/** @param {string} root the package root, with a trailing slash */
export async function buildWeb(root) {
  const out = `${root}dist/web`;
  await mkdir(out, { recursive: true });
  await build({
    entryPoints: [`${root}web/src/main.ts`],
    outfile: `${out}/app.js`,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    // ES2020 syntax: every browser of the last few years.
    target: 'es2020',
    minify: false,
    logLevel: 'warning',
  });
  for (const file of STATIC_FILES) await copyFile(`${root}web/${file}`, `${out}/${file}`);
}
