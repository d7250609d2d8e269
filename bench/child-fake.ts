import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Starts `bench/fake-server.ts` in a child process and resolves with its base URL. */
export async function startChildFake(env: Record<string, string> = {}): Promise<{ baseUrl: string; stop: () => void; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./fake-server.ts', import.meta.url).pathname], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fake exited with ${code}`)));
  });
  return { baseUrl, child, stop: () => child.kill('SIGTERM') };
}
