import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { npmStartNodeArgs } from '../test/helpers/npm-start-command.js';

/** One start of the real gateway, as `npm start` runs it. */
export interface GatewayStart {
  /** Process spawned → `/healthz` answered 200. */
  toHealthzMs: number;
  /** The gateway process's resident set (VmRSS) after two idle seconds, MiB. */
  idleRssMiB: number;
}

/** The gateway running in its own process, as `npm start` runs it. */
export interface SpawnedGateway {
  url: string;
  pid: number;
  /** Process spawned → `/healthz` answered 200. */
  toHealthzMs: number;
  /** SIGTERM, and resolves once the process has exited. */
  stop(): Promise<void>;
}

/**
 * Starts the gateway as `npm start` does (package.json's `start`: node on the bundle in `dist/`, which the
 * bench builds first) on the config at `configPath`, and resolves once `/healthz` answers 200. `nodeArgs`
 * go to node before `npm start`'s own (a bench's `--inspect`, say).
 */
export async function spawnGateway(configPath: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<SpawnedGateway> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, ...npmStartNodeArgs(), '-c', configPath], {
    env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        let entry: { url?: unknown } = {};
        try {
          entry = JSON.parse(line) as { url?: unknown };
        } catch {
          // Not a log line (a warning printed by a dependency): not the one we wait for.
        }
        if (typeof entry.url === 'string') resolve(entry.url);
      });
      void exited.then((code) => reject(new Error(`the gateway exited with ${code} before listening`)));
    });
    for (;;) {
      const { statusCode, body } = await request(`${url}/healthz`);
      await body.dump();
      if (statusCode === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { url, pid: child.pid!, toHealthzMs: performance.now() - startedAt, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Starts the gateway with a one-backend config in `folder` (its `data` subfolder is the embedded
 * database), times it to `/healthz` ok, lets it idle two seconds, reads its RSS from /proc, and stops it.
 */
export async function startGatewayOnce(folder: string, baseUrl: string, databaseUrl: string | null): Promise<GatewayStart> {
  const configPath = join(folder, 'switchboard.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { url: databaseUrl, dataDir: join(folder, 'data') },
      backends: { fake: { baseUrl, model: 'bench' } },
    }),
  );
  const gateway = await spawnGateway(configPath);
  try {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    return { toHealthzMs: gateway.toHealthzMs, idleRssMiB: residentMiB(gateway.pid) };
  } finally {
    await gateway.stop();
  }
}

/** VmRSS of a process, MiB (Linux). */
function residentMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  if (line === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number.parseInt(line.replace(/\D+/g, ''), 10) / 1024;
}
