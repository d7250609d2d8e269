import { request } from 'undici';
import { parsePrometheusText, sampleValue, type MetricFamily } from '../test/helpers/prometheus-text.js';

/**
 * prom-client samples the event loop every 10 ms (its `eventLoopMonitoringPrecision`), and what
 * `monitorEventLoopDelay` records is the time between samples, so an idle loop reads ~10 ms: this is
 * taken off to leave the delay itself.
 */
const PROM_CLIENT_SAMPLING_MS = 10;

/** The gateway process over one interval, read from its own `GET /metrics`. */
export interface GatewaySample {
  rssMiB: number;
  heapUsedMiB: number;
  /** C++ objects bound to JS ones, Buffers and ArrayBuffers among them (prom-client has no separate arrayBuffers). */
  externalMiB: number;
  /** Event-loop delay over the interval, ms: prom-client resets its histogram at every scrape. */
  eld: { p50: number; p99: number; max: number };
  /** CPU time (user + system) over the interval, as a percentage of one core. */
  cpuPercent: number;
  /** Jobs that ended over the interval: `done`, and anything else (`error`, `cancelled`) by reason. */
  jobsDone: number;
  jobsFailed: number;
  failedReasons: Record<string, number>;
  /** Jobs running or waiting at the end of the interval. */
  jobsInFlight: number;
}

/**
 * Scrapes a gateway's `GET /metrics` (prom-client's default process metrics and `switchboard_jobs_total`)
 * and turns each scrape into the figures of the interval since the previous one. Nothing is added to
 * the gateway for this; the first call's interval is the time since the gateway started.
 */
export class SoakSampler {
  private last = { at: 0, cpuSeconds: 0, done: 0, ended: 0, failed: {} as Record<string, number> };

  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}

  async sample(): Promise<GatewaySample> {
    const at = performance.now();
    const { statusCode, body } = await request(`${this.url}/metrics`, { headers: { authorization: `Bearer ${this.token}` } });
    const text = await body.text();
    if (statusCode !== 200) throw new Error(`GET /metrics answered ${statusCode}`);
    const families = parsePrometheusText(text);
    const value = (name: string) => sampleValue(families, name);
    const eldMs = (name: string) => Math.max(0, value(name) * 1000 - PROM_CLIENT_SAMPLING_MS);
    const cpuSeconds = value('process_cpu_seconds_total');
    const { done, ended, failed } = jobsEnded(families);
    const previous = this.last;
    this.last = { at, cpuSeconds, done, ended, failed };
    const failedReasons = Object.fromEntries(
      Object.entries(failed)
        .map(([reason, count]) => [reason, count - (previous.failed[reason] ?? 0)] as const)
        .filter(([, count]) => count > 0),
    );
    return {
      rssMiB: value('process_resident_memory_bytes') / 2 ** 20,
      heapUsedMiB: value('nodejs_heap_size_used_bytes') / 2 ** 20,
      externalMiB: value('nodejs_external_memory_bytes') / 2 ** 20,
      eld: { p50: eldMs('nodejs_eventloop_lag_p50_seconds'), p99: eldMs('nodejs_eventloop_lag_p99_seconds'), max: eldMs('nodejs_eventloop_lag_max_seconds') },
      cpuPercent: previous.at === 0 ? NaN : ((cpuSeconds - previous.cpuSeconds) / ((at - previous.at) / 1000)) * 100,
      jobsDone: done - previous.done,
      jobsFailed: ended - done - (previous.ended - previous.done),
      failedReasons,
      jobsInFlight: families.get('switchboard_jobs_in_flight')?.samples.reduce((sum, sample) => sum + sample.value, 0) ?? NaN,
    };
  }
}

/** All jobs ended so far, those that ended `done`, and the others by status and reason. */
function jobsEnded(families: Map<string, MetricFamily>): { done: number; ended: number; failed: Record<string, number> } {
  let done = 0;
  let ended = 0;
  const failed: Record<string, number> = {};
  for (const { labels, value } of families.get('switchboard_jobs_total')?.samples ?? []) {
    ended += value;
    if (labels.status === 'done') done += value;
    else {
      const key = `${labels.status} ${labels.reason}`;
      failed[key] = (failed[key] ?? 0) + value;
    }
  }
  return { done, ended, failed };
}
