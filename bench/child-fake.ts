import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A bench server in a child process: resolves with the URL it prints on its first line. */
export async function startChildServer(script: string, env: Record<string, string> = {}): Promise<{ baseUrl: string; stop: () => void; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(script, import.meta.url).pathname], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { baseUrl, child, stop: () => child.kill('SIGTERM') };
}

/** Starts `bench/fake-server.ts` in a child process and resolves with its base URL. */
export function startChildFake(env: Record<string, string> = {}): Promise<{ baseUrl: string; stop: () => void; child: ChildProcess }> {
  return startChildServer('./fake-server.ts', env);
}
