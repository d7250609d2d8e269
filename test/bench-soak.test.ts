import { describe, expect, it } from 'vitest';
import { soakLines } from '../bench/soak-report.js';
import { parseSoakDuration, runSoak } from '../bench/soak.js';
import { runScript } from './helpers/run-script.js';

describe('bench --soak', () => {
  it('reads 30s, 10m, 2h and plain seconds, and nothing else', () => {
    expect([parseSoakDuration('30s'), parseSoakDuration('10m'), parseSoakDuration('2h'), parseSoakDuration('45'), parseSoakDuration('1.5m')]).toEqual([30, 600, 7200, 45, 90]);
    for (const bad of [undefined, '', '0', '0s', '-5', '10x', '10 m', 'm', '1e3']) expect(parseSoakDuration(bad)).toBeNull();
  });

  it('refuses a bad duration with one sentence and exit code 2, before starting anything', async () => {
    const run = await runScript('bench/run.ts', ['--soak', 'ten'], { timeoutMs: 15_000 });
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe('--soak needs a duration such as 30s, 10m, 2h or plain seconds, not "ten".');
    expect(run.stdout).toBe('');
  });

  // Only the shape: the timings on a shared test machine say nothing.
  it('runs the gateway under load for 3 s and reports a row a second, then the verdict', { timeout: 40_000 }, async () => {
    const result = await runSoak({ seconds: 3, intervalSeconds: 1 });
    expect(result.rows.map((row) => row.at)).toEqual([1, 2, 3]);
    for (const row of result.rows) {
      for (const value of [row.rssMiB, row.heapUsedMiB, row.externalMiB, row.eld.p50, row.eld.p99, row.eld.max, row.cpuPercent]) {
        expect(Number.isFinite(value)).toBe(true);
      }
      expect(row.rssMiB).toBeGreaterThan(row.heapUsedMiB);
      expect(row.jobsFailed + row.clientErrors).toBe(0);
    }
    // An interval in which no answer came back (a slow start on a busy machine) has no latency: "–".
    expect(result.rows.reduce((sum, row) => sum + row.jobsDone, 0)).toBeGreaterThan(0);
    expect(result.rows.some((row) => Number.isFinite(row.ws.median) && Number.isFinite(row.ws.p99))).toBe(true);
    expect(result.rows.some((row) => Number.isFinite(row.api.median) && Number.isFinite(row.api.p99))).toBe(true);
    const lines = soakLines(result);
    const table = lines.filter((line) => /^\s+[123] /.test(line));
    expect(table).toHaveLength(3);
    expect(lines.some((line) => /^ {2}RSS: [+-]\d+\.\d MiB\/h .* — (flat|NOT flat)$/.test(line))).toBe(true);
    expect(lines.some((line) => /^ {2}heap used: [+-]\d+\.\d MiB\/h .* — (flat|NOT flat)$/.test(line))).toBe(true);
    expect(lines.some((line) => /^ {2}event-loop delay p99, .* — (flat|NOT flat) /.test(line))).toBe(true);
  });
});
