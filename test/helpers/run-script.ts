import { spawn } from 'node:child_process';

/** How a command-line entry point ended. */
export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const ROOT = new URL('../..', import.meta.url).pathname;

/**
 * Runs `node --import tsx FILE ARGS` (what `npm start`, `npm run ingest` and `npm run migrate` run) in
 * the repository, without DATABASE_URL, and collects its output. A run still going after `timeoutMs` is
 * killed and fails the test: hanging silently is one of the failures these tests look for.
 */
export async function runScript(
  file: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ScriptRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    env: { ...process.env, VITEST: '', DATABASE_URL: undefined, LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  }).finally(() => clearTimeout(timer));
  if (timedOut) throw new Error(`${file} ${args.join(' ')} still ran after ${timeoutMs} ms; stderr: ${stderr}`);
  return { code, stdout, stderr };
}
