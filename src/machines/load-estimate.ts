import type { BackendStatusReport } from '../actors/inference/types.js';

/** How busy a backend is, lowest first. */
export const LOAD_LEVELS = ['idle', 'normal', 'busy', 'very_busy'] as const;
export type LoadLevel = (typeof LOAD_LEVELS)[number];
export type LoadSource = 'status_api' | 'hybrid';

/** What the health region has measured; everything the load rule needs besides the local queue. */
export interface HealthMeasures {
  /** Latency of the last successful health probe. */
  healthMs: number;
  /** Health latency baseline (seed 000): max of the first 5 samples, then EMA 0.9/0.1, floor 10 ms. */
  baselineMs: number;
  samples: number;
  /** Last `statusUrl` report, when the backend has one. */
  statusReport: BackendStatusReport | null;
  /** Last inference ping latency and when it was measured (epoch ms), or null. */
  inferenceMs: number | null;
  inferenceAt: number;
  /** When the last inference ping was attempted (epoch ms), for the cooldown. */
  pingAttemptAt: number;
}

export const INITIAL_MEASURES: HealthMeasures = {
  healthMs: 0,
  baselineMs: 0,
  samples: 0,
  statusReport: null,
  inferenceMs: null,
  inferenceAt: 0,
  pingAttemptAt: 0,
};

export const BASELINE_FLOOR_MS = 10;
/** An inference ping result stays valid this long. */
export const PING_CACHE_MS = 30_000;
/** No new ping within this long of the last attempt. */
export const PING_COOLDOWN_MS = 10_000;

/** Folds one successful health latency sample into the baseline. */
export function updateBaseline(measures: HealthMeasures, latencyMs: number): Pick<HealthMeasures, 'baselineMs' | 'samples'> {
  const samples = measures.samples + 1;
  const current = measures.samples === 0 ? latencyMs : measures.baselineMs;
  // The first samples take the max so that one lucky fast probe cannot set a baseline nothing meets again.
  const next = samples < 5 ? Math.max(current, latencyMs) : current * 0.9 + latencyMs * 0.1;
  return { samples, baselineMs: Math.max(next, BASELINE_FLOOR_MS) };
}

/** Whether the hybrid rule wants a fresh inference ping now (no status API, health slow, cache and cooldown over). */
export function wantsInferencePing(measures: HealthMeasures, now: number): boolean {
  if (measures.statusReport !== null) return false;
  if (now - measures.inferenceAt < PING_CACHE_MS) return false;
  if (now - measures.pingAttemptAt < PING_COOLDOWN_MS) return false;
  return measures.healthMs > measures.baselineMs * 3;
}

/** The local queue of this backend, which nudges the level up. */
export interface QueueCounts {
  waiting: number;
  running: number;
}

/** The load level from the status API when there is one, else from the hybrid rule; then the local queue nudge. */
export function estimateLoad(measures: HealthMeasures, queue: QueueCounts, now: number): { load: LoadLevel; source: LoadSource } {
  const report = measures.statusReport;
  if (report !== null) {
    const jobs = report.activeJobs;
    const load: LoadLevel = jobs >= 4 ? 'very_busy' : jobs >= 2 ? 'busy' : jobs === 1 ? 'normal' : 'idle';
    return { load: nudge(load, queue), source: 'status_api' };
  }
  const baseline = measures.baselineMs > 0 ? measures.baselineMs : 50;
  const inference = now - measures.inferenceAt < PING_CACHE_MS ? measures.inferenceMs : null;
  let load: LoadLevel;
  if (inference !== null && inference > 8_000) load = 'very_busy';
  else if (inference !== null && inference > 4_000) load = 'busy';
  else if (measures.healthMs > baseline * 5) load = 'busy';
  else if (measures.healthMs > baseline * 2) load = 'normal';
  else load = 'idle';
  return { load: nudge(load, queue), source: 'hybrid' };
}

/** Work waiting in our own mailbox means the server is busier than it can tell: one level up, at most busy. */
function nudge(load: LoadLevel, queue: QueueCounts): LoadLevel {
  if (queue.waiting === 0) return load;
  if (load === 'idle') return 'normal';
  if (load === 'normal') return 'busy';
  return load;
}
