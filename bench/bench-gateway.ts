import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { spawnGateway, type SpawnedGateway } from './gateway-start.js';

/**
 * The real gateway in its own process as `npm start` runs it (`spawnGateway`; the bench builds `dist/`
 * first), on a fresh folder with one backend over the fake holding `concurrency` requests at once, both
 * roles and the mode `daily` on it, and limits raised as in `benchConfig` so that one owner (anonymous)
 * may keep thousands of jobs waiting or running from a few connections; `limits` raises them further.
 * `nodeArgs`: as `spawnGateway`'s.
 */
export async function startBenchGateway(
  baseUrl: string,
  databaseUrl: string | null,
  concurrency: number,
  nodeArgs: string[] = [],
  limits: Record<string, number> = {},
): Promise<SpawnedGateway & { wsUrl: string }> {
  const folder = mkdtempSync(join(tmpdir(), 'sb-bench-gateway-'));
  const configPath = join(folder, 'switchboard.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { url: databaseUrl, dataDir: join(folder, 'data') },
      backends: { fake: { baseUrl, model: 'bench', concurrency, healthIntervalMs: 3_600_000 } },
      roles: { classifier: 'fake', reasoner: 'fake' },
      modes: { daily: 'fake' },
      limits: { maxActiveJobs: 1_000, connectionsPerOwner: 1_000, pendingJobsPerOwner: 10_000, framesPerSecond: 100_000, ...limits },
      persona: { name: 'Eid', locale: 'en' },
    }),
  );
  const gateway = await spawnGateway(configPath, {}, nodeArgs).catch((error: unknown) => {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  });
  return {
    ...gateway,
    wsUrl: `${gateway.url.replace(/^http/, 'ws')}/ws`,
    stop: async () => {
      await gateway.stop();
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

/** One sample from the gateway's `GET /metrics`, by its name with labels as printed (`name{label="x"}`). */
export async function readMetric(url: string, sample: string): Promise<number> {
  const { body } = await request(`${url}/metrics`);
  const line = (await body.text()).split('\n').find((l) => l.startsWith(`${sample} `));
  return Number(line?.slice(sample.length + 1) ?? NaN);
}
