import { stats } from './harness.js';
import type { SoakResult, SoakRow } from './soak.js';

/** Least-squares slope of `ys` over `xs`, and how far the points scatter around the line (RMS). */
function fit(xs: number[], ys: number[]): { slope: number; scatter: number } {
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  const sxx = xs.reduce((sum, x) => sum + (x - mx) ** 2, 0);
  const slope = sxx === 0 ? 0 : xs.reduce((sum, x, i) => sum + (x - mx) * (ys[i]! - my), 0) / sxx;
  const scatter = Math.sqrt(mean(ys.map((y, i) => (y - (my + slope * (xs[i]! - mx))) ** 2)));
  return { slope, scatter };
}

const median = (values: number[]) => stats(values).median;

/** The verdict lines: memory slopes over the second half, ELD p99 of the last quarter against the first after warm-up. */
export function soakVerdict(rows: SoakRow[]): string[] {
  const half = rows.slice(Math.floor(rows.length / 2));
  const xs = half.map((row) => row.at);
  const span = xs.at(-1)! - xs[0]!;
  const memory = (label: string, pick: (row: SoakRow) => number) => {
    const { slope, scatter } = fit(xs, half.map(pick));
    const change = slope * span;
    const flat = Math.abs(change) <= 2 * scatter || Math.abs(slope * 3600) <= 5;
    return `  ${label}: ${slope * 3600 >= 0 ? '+' : ''}${(slope * 3600).toFixed(1)} MiB/h (a change of ${change.toFixed(1)} MiB over the half, the samples scatter ±${scatter.toFixed(1)} MiB around the line) — ${flat ? 'flat' : 'NOT flat'}`;
  };
  // Warm-up: the first tenth of the rows (at least one) is left out of the event-loop comparison.
  const warm = rows.slice(Math.max(1, Math.floor(rows.length / 10)));
  const quarter = Math.max(1, Math.floor(warm.length / 4));
  const first = median(warm.slice(0, quarter).map((row) => row.eld.p99));
  const last = median(warm.slice(-quarter).map((row) => row.eld.p99));
  const eldFlat = last <= Math.max(1.5 * first, first + 2);
  return [
    `verdict (memory: least-squares slope over the second half, ${half.length} samples; flat when under 5 MiB/h or the fitted change is within twice the scatter)`,
    memory('RSS', (row) => row.rssMiB),
    memory('heap used', (row) => row.heapUsedMiB),
    `  event-loop delay p99, median over the last quarter ${last.toFixed(1)} ms vs the first quarter after warm-up ${first.toFixed(1)} ms — ${eldFlat ? 'flat' : 'NOT flat'} (flat: at most 1.5× or +2 ms)`,
  ];
}

/** The report: the load, a table over time, the verdict. */
export function soakLines(result: SoakResult): string[] {
  const { load, rows } = result;
  const n = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
  const cells = (values: string[]) => values.map((value, i) => (i === 0 ? value.padStart(6) : value.padStart(widths[i]!))).join(' ');
  const header = ['t s', 'done', 'failed', 'in fl.', 'cl.err', 'RSS MiB', 'heap MiB', 'ext MiB', 'ELD p50', 'p99', 'max ms', 'WS p50', 'p99 ms', 'API p50', 'p99 ms', 'CPU %'];
  const widths = header.map((h) => Math.max(h.length, 6));
  const totalDone = rows.reduce((sum, row) => sum + row.jobsDone, 0);
  return [
    `soak: ${result.seconds} s, a row every ${result.intervalSeconds} s; the gateway as npm start runs it (own process), the bench fake in another`,
    `  load: ${load.wsClients} WebSocket clients, one chat each every ${load.chatEveryMs} ms (follow-ups, a new conversation every ${load.turnsPerConversation} turns: ${result.newConversations} in all),`,
    `  and ${load.apiPerSec} OpenAI API requests/s (half streamed, 50 chunks 2 ms apart; half not, with history): ~${n(load.wsClients * (1000 / load.chatEveryMs) + load.apiPerSec, 0)} jobs/s offered, ${n(totalDone / result.seconds, 1)} done/s`,
    `  memory and event-loop delay from the gateway's GET /metrics (prom-client; ELD less its 10 ms sampling interval), latency as the clients saw it`,
    '',
    cells(header),
    ...rows.map((row) =>
      cells([
        n(row.at, 0),
        String(row.jobsDone),
        String(row.jobsFailed),
        String(row.jobsInFlight),
        String(row.clientErrors),
        n(row.rssMiB),
        n(row.heapUsedMiB),
        n(row.externalMiB),
        n(row.eld.p50, 2),
        n(row.eld.p99, 2),
        n(row.eld.max, 1),
        n(row.ws.median, 1),
        n(row.ws.p99, 1),
        n(row.api.median, 1),
        n(row.api.p99, 1),
        n(row.cpuPercent, 0),
      ]),
    ),
    '',
    failures(rows),
    ...soakVerdict(rows),
  ];
}

/** What failed over the whole run, in the gateway (jobs by status and reason) and at the clients, from when. */
function failures(rows: SoakRow[]): string {
  const sum = (pick: (row: SoakRow) => Record<string, number>) => {
    const total: Record<string, number> = {};
    for (const row of rows) for (const [kind, count] of Object.entries(pick(row))) total[kind] = (total[kind] ?? 0) + count;
    return Object.entries(total).map(([kind, count]) => `${kind}: ${count}`).join(', ') || 'none';
  };
  const first = rows.find((row) => row.jobsFailed + row.clientErrors > 0);
  if (first === undefined) return 'failures: none';
  return `failures, first in the interval ending at ${first.at} s — jobs: ${sum((row) => row.failedReasons)}; clients: ${sum((row) => row.clientErrorKinds)}`;
}
