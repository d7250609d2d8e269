import { describe, expect, it } from 'vitest';
import { estimateLoad, INITIAL_MEASURES, updateBaseline, wantsInferencePing, type HealthMeasures } from '../src/machines/load-estimate.js';

const idleQueue = { waiting: 0, running: 0 };
const at = (overrides: Partial<HealthMeasures>): HealthMeasures => ({ ...INITIAL_MEASURES, baselineMs: 20, samples: 10, ...overrides });

describe('load estimate (seed 000 rules)', () => {
  it('keeps the max of the first five samples, then an EMA 0.9/0.1 with a 10 ms floor', () => {
    let m: HealthMeasures = INITIAL_MEASURES;
    for (const sample of [3, 40, 12, 25]) m = { ...m, ...updateBaseline(m, sample) };
    expect(m.baselineMs).toBe(40);
    m = { ...m, ...updateBaseline(m, 20) };
    expect(m.baselineMs).toBeCloseTo(38);
    let low: HealthMeasures = INITIAL_MEASURES;
    for (let i = 0; i < 10; i++) low = { ...low, ...updateBaseline(low, 1) };
    expect(low.baselineMs).toBe(10);
  });

  it('reads the status API: 0 idle, 1 normal, 2-3 busy, 4+ very busy', () => {
    const levels = [0, 1, 2, 3, 4, 9].map((activeJobs) =>
      estimateLoad(at({ statusReport: { activeJobs, totalRequests: 0 } }), idleQueue, 0),
    );
    expect(levels.map((l) => l.load)).toEqual(['idle', 'normal', 'busy', 'busy', 'very_busy', 'very_busy']);
    expect(levels.every((l) => l.source === 'status_api')).toBe(true);
  });

  it('applies the hybrid rule: inference latency first, then health latency against the baseline', () => {
    const now = 100_000;
    expect(estimateLoad(at({ healthMs: 20 }), idleQueue, now)).toEqual({ load: 'idle', source: 'hybrid' });
    expect(estimateLoad(at({ healthMs: 41 }), idleQueue, now).load).toBe('normal');
    expect(estimateLoad(at({ healthMs: 101 }), idleQueue, now).load).toBe('busy');
    expect(estimateLoad(at({ healthMs: 20, inferenceMs: 4500, inferenceAt: now - 1000 }), idleQueue, now).load).toBe('busy');
    expect(estimateLoad(at({ healthMs: 20, inferenceMs: 9000, inferenceAt: now - 1000 }), idleQueue, now).load).toBe('very_busy');
    // A ping older than its 30 s cache no longer counts.
    expect(estimateLoad(at({ healthMs: 20, inferenceMs: 9000, inferenceAt: now - 31_000 }), idleQueue, now).load).toBe('idle');
  });

  it('nudges the level up one step when our own queue has waiting work', () => {
    expect(estimateLoad(at({ healthMs: 20 }), { waiting: 2, running: 1 }, 0).load).toBe('normal');
    expect(estimateLoad(at({ healthMs: 41 }), { waiting: 1, running: 1 }, 0).load).toBe('busy');
  });

  it('pings only when health is over 3x baseline, outside the 30 s cache and the 10 s cooldown, and never with a status API', () => {
    const now = 1_000_000;
    expect(wantsInferencePing(at({ healthMs: 61 }), now)).toBe(true);
    expect(wantsInferencePing(at({ healthMs: 59 }), now)).toBe(false);
    expect(wantsInferencePing(at({ healthMs: 61, inferenceAt: now - 20_000 }), now)).toBe(false);
    expect(wantsInferencePing(at({ healthMs: 61, pingAttemptAt: now - 5_000 }), now)).toBe(false);
    expect(wantsInferencePing(at({ healthMs: 61, statusReport: { activeJobs: 0, totalRequests: 0 } }), now)).toBe(false);
  });
});
