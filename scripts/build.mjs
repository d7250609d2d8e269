// @ts-check
/**
 * `npm run build` (and `npm start`'s prestart): bundles the gateway into `dist/main.mjs` with esbuild.
 *
 * The gateway runs as plain JavaScript: under tsx it also carried the TypeScript loader's thread and its
 * transformed sources, about 45 MiB of a small machine's memory for nothing (measured in `npm run bench`),
 * and it started slower. Dependencies stay in node_modules (`packages: 'external'`). Next to it go the
 * two programs the embedded database runs apart: `pglite-template.mjs` (a process that makes new
 * databases) and `pglite-worker.mjs` (its thread, plain JavaScript already). The web chat page goes to
 * `dist/web/` (scripts/build-web.mjs).
 */
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildWeb } from './build-web.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: {
    main: `${root}src/main.ts`,
    'pglite-template': `${root}src/actors/store/pglite-template.ts`,
  },
  outdir: dist,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
await copyFile(`${root}src/actors/store/pglite-worker.mjs`, `${dist}/pglite-worker.mjs`);
await buildWeb(root);
