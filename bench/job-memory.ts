import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import { benchConfig } from './jobs.js';

const gc = (globalThis as { gc?: () => void }).gc;
/** Jobs held before the first reading. */
const WARM_UP = 200;

async function settle(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage().heapUsed;
}

/**
 * Heap per in-flight job: `count` jobs held in flight (the fake holds every classifier call) in one
 * runtime, heap after a full GC before and after, divided by the count; before, {@link WARM_UP} jobs are
 * already held. Needs `--expose-gc`.
 */
export async function benchJobMemory(holdingBaseUrl: string, count = 1_000): Promise<{ perJobBytes: number; measured: boolean }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-mem-'));
  const config = benchConfig(holdingBaseUrl, dataDir);
  const runtime = createRuntime({ ...config, limits: { ...config.limits, maxActiveJobs: WARM_UP + count } }, { log: createLogger({ level: 'silent' }) });
  await runtime.start();
  // Warm up with jobs held like the measured ones (they stay in flight), so that what is built once —
  // code the JIT compiles as the paths get hot, hidden classes, lazily made tables — is not counted per job.
  for (let i = 0; i < WARM_UP; i++) await runtime.submit({ text: `warm ${i}`, source: 'ws', owner: 'bench' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = await settle();
  for (let i = 0; i < count; i++) await runtime.submit({ text: `hello ${i}`, source: 'ws', owner: 'bench' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await settle();
  const inFlight = runtime.status().jobs;
  await runtime.stop(0);
  rmSync(dataDir, { recursive: true, force: true });
  if (inFlight.active + inFlight.pending < WARM_UP + count) throw new Error('jobs ended before they were measured');
  return { perJobBytes: (after - before) / count, measured: gc !== undefined };
}
