import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** A gateway in its own process (`src/main.ts`), for tests that kill it. */
export interface ChildGateway {
  url: string;
  wsUrl: string;
  child: ChildProcess;
  /** Log lines it wrote (JSON), for privacy checks. */
  logs: string[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Writes `config` next to `dir` and starts `npm start`'s entry point on it; resolves once it listens. */
export async function startChildGateway(dir: string, config: Record<string, unknown>): Promise<ChildGateway> {
  const configPath = join(dir, 'switchboard.config.json');
  writeFileSync(configPath, JSON.stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configPath], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { ...process.env, VITEST: '', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'switchboard listening' && entry.url) resolve(entry.url);
      } catch {
        // Not a log line.
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    child,
    logs,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, 'close')) as [number | null];
      return code;
    },
  };
}

/** The config of a child gateway over two fakes (small: classifier, large: reasoner), data under `dir`. */
export function childConfig(
  dir: string,
  small: { baseUrl: string },
  large: { baseUrl: string },
  extra: { backend?: Record<string, unknown>; [key: string]: unknown } = {},
): Record<string, unknown> {
  const { backend: backendExtra = {}, ...rest } = extra;
  const backend = (fake: { baseUrl: string }) => ({ baseUrl: fake.baseUrl, model: 'fake-model', healthIntervalMs: 60_000, ...backendExtra });
  return {
    server: { host: '127.0.0.1', port: 0 },
    database: { dataDir: join(dir, 'data') },
    backends: { small: backend(small), large: backend(large) },
    roles: { classifier: 'small', reasoner: 'large' },
    modes: { daily: 'small' },
    persona: { name: 'Eid', locale: 'en' },
    ...rest,
  };
}
