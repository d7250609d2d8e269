import { execFileSync } from 'node:child_process';

/** Global setup: builds `dist/` once per run, as `npm start`'s prestart does (see helpers/npm-start-command.ts). */
export default function buildBundle(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: new URL('../..', import.meta.url).pathname, stdio: 'inherit' });
}
