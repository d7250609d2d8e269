import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import { benchConfig } from './jobs.js';

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().heapUsed;
}

/**
 * Heap per in-flight job: `count` jobs held in flight (the fake holds every classifier call) in one
 * runtime, heap after a full GC before and after, divided by the count. Needs `--expose-gc`.
 */
export async function benchJobMemory(holdingBaseUrl: string, count = 1_000): Promise<{ perJobBytes: number; measured: boolean }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-mem-'));
  const runtime = createRuntime(benchConfig(holdingBaseUrl, dataDir), { log: createLogger({ level: 'silent' }) });
  await runtime.start();
  // Warm up the paths once so that lazily built things are not counted per job.
  await runtime.submit({ text: 'warm', source: 'ws', owner: 'bench' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = await settle();
  for (let i = 0; i < count; i++) await runtime.submit({ text: `hello ${i}`, source: 'ws', owner: 'bench' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await settle();
  const inFlight = runtime.status().jobs;
  await runtime.stop(0);
  rmSync(dataDir, { recursive: true, force: true });
  if (inFlight.active + inFlight.pending < count) throw new Error('jobs ended before they were measured');
  return { perJobBytes: (after - before) / count, measured: gc !== undefined };
}
