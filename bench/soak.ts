import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { BenchmarksFile } from './benchmarks-file.js';
import { startChildFake } from './child-fake.js';
import { spawnGateway } from './gateway-start.js';
import { stats } from './harness.js';
import { soakLines } from './soak-report.js';
import { SoakSampler, type GatewaySample } from './soak-sampler.js';

/** The steady load of a soak: WebSocket clients chatting, and OpenAI API requests at a fixed rate. */
export interface SoakLoad {
  /** WebSocket connections, each one chat at a time, one every `chatEveryMs` (or at once when late). */
  wsClients: number;
  chatEveryMs: number;
  /** A client follows up in its conversation this many turns, then starts a new one. */
  turnsPerConversation: number;
  /** `POST /v1/chat/completions` per second, open loop, alternately streamed (50 chunks 2 ms apart) and not. */
  apiPerSec: number;
}

/**
 * 24 jobs/s offered: what this 2-core machine sustains with room to spare while others use it (measured:
 * the gateway then takes ~30 % of a core; at twice this, on a busy box, its event loop fell behind).
 */
export const SOAK_LOAD: SoakLoad = { wsClients: 8, chatEveryMs: 500, turnsPerConversation: 200, apiPerSec: 8 };

/** One interval: the gateway's own figures and what the clients saw. */
export interface SoakRow extends GatewaySample {
  /** Seconds since the load started, at the end of the interval. */
  at: number;
  clientErrors: number;
  /** What the clients' errors were: an HTTP status, a WebSocket `error` frame's code or a job's end. */
  clientErrorKinds: Record<string, number>;
  ws: { median: number; p99: number };
  api: { median: number; p99: number };
}

export interface SoakResult {
  load: SoakLoad;
  seconds: number;
  intervalSeconds: number;
  rows: SoakRow[];
  newConversations: number;
}

/**
 * `--soak 30s | 10m | 2h | 45` (plain seconds): the duration in seconds, or null for anything else.
 * A tiny parser rather than a schema: one regular expression says the whole format.
 */
export function parseSoakDuration(text: string | undefined): number | null {
  const match = /^(\d+(?:\.\d+)?)([smh]?)$/.exec(text ?? '');
  if (match === null) return null;
  const seconds = Number(match[1]) * { '': 1, s: 1, m: 60, h: 3600 }[match[2] as '' | 's' | 'm' | 'h'];
  return seconds > 0 ? seconds : null;
}

/** About sixty rows whatever the duration, never more often than once a second. */
export function soakInterval(seconds: number): number {
  return Math.max(1, Math.round(seconds / 60));
}

/** Latencies and errors the clients saw since the last `take`. */
class ClientTally {
  private ws: number[] = [];
  private api: number[] = [];
  private errors: Record<string, number> = {};
  newConversations = 0;

  /** A chat or a call ended: its latency when it went well, else what went wrong. */
  ended(kind: 'ws' | 'api', ms: number, error: string | null): void {
    if (error === null) this[kind].push(ms);
    else this.errors[error] = (this.errors[error] ?? 0) + 1;
  }

  take(): Pick<SoakRow, 'clientErrors' | 'clientErrorKinds' | 'ws' | 'api'> {
    const spread = (values: number[]) => {
      const { median, p99 } = stats(values);
      return { median, p99 };
    };
    const errors = this.errors;
    const taken = { clientErrors: Object.values(errors).reduce((a, b) => a + b, 0), clientErrorKinds: errors, ws: spread(this.ws), api: spread(this.api) };
    this.ws = [];
    this.api = [];
    this.errors = {};
    return taken;
  }
}

/**
 * One WebSocket client until `until`: a chat, its terminal event, the next chat at its pace; follow-ups
 * in one conversation, a new conversation every `turnsPerConversation` chats. Two memories of the gateway
 * fill by design under any steady load, and the load keeps them small so that a leak would show: the
 * history cache holds the last 80 messages of each conversation for an hour (hence few, long
 * conversations), and a day of `clientMsgId`s, up to 50 000 (hence none sent).
 */
async function chatter(wsUrl: string, token: string, load: SoakLoad, until: number, tally: ClientTally): Promise<void> {
  const socket = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token}` } });
  await once(socket, 'open');
  let ended: ((error: string | null) => void) | null = null;
  let jobId: string | null = null;
  let conversationId: string | undefined;
  let closed = false;
  socket.on('close', () => {
    closed = true;
    ended?.('ws closed');
  });
  socket.on('message', (raw) => {
    const frame = JSON.parse(String(raw)) as { type: string; jobId?: string; conversationId?: string; event?: string; code?: string; data?: { reason?: string } };
    if (frame.type === 'accepted') {
      jobId = frame.jobId ?? null;
      conversationId = frame.conversationId;
    } else if (frame.type === 'error') ended?.(`ws ${frame.code}`);
    else if (frame.type === 'event' && frame.jobId === jobId && ['done', 'error', 'cancelled'].includes(frame.event ?? '')) {
      ended?.(frame.event === 'done' ? null : `ws ${frame.event} ${frame.data?.reason ?? ''}`.trim());
    }
  });
  // Clients start spread over one pace, not all in the same millisecond.
  let due = performance.now() + Math.random() * load.chatEveryMs;
  for (let turn = 0; due < until && !closed; turn++) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
    if (turn % load.turnsPerConversation === 0) {
      conversationId = undefined;
      tally.newConversations++;
    }
    const sentAt = performance.now();
    const error = await new Promise<string | null>((resolve) => {
      ended = resolve;
      jobId = null;
      socket.send(JSON.stringify({ type: 'chat', text: 'hello', ...(conversationId && { conversationId }) }));
    });
    tally.ended('ws', performance.now() - sentAt, error);
    due = Math.max(due + load.chatEveryMs, performance.now());
  }
  socket.close();
}

/** OpenAI API requests at `apiPerSec` until `until`, open loop: latency from each request's due time. */
async function caller(url: string, token: string, load: SoakLoad, until: number, tally: ClientTally): Promise<void> {
  const dispatcher = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const streamed = JSON.stringify({ model: 'daily', stream: true, messages: [{ role: 'user', content: 'stream' }] });
  const followUp = JSON.stringify({
    model: 'daily',
    messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'x' }, { role: 'user', content: 'hello' }],
  });
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  for (let i = 0; ; i++) {
    const due = started + (i * 1000) / load.apiPerSec;
    if (due >= until) break;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
    const stream = i % 2 === 0;
    const call = request(url, { method: 'POST', dispatcher, headers, body: stream ? streamed : followUp })
      .then(async (response) => {
        const text = await response.body.text();
        const complete = stream ? text.includes('[DONE]') : text.includes('"choices"');
        tally.ended('api', performance.now() - due, response.statusCode !== 200 ? `api ${response.statusCode}` : complete ? null : 'api incomplete');
      })
      .catch((error: unknown) => tally.ended('api', 0, `api ${(error as { code?: string }).code ?? 'client error'}`))
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  }
  await Promise.all(inFlight);
  await dispatcher.close();
}

/**
 * A soak: the gateway as `npm start` runs it (its own process, on a fresh PGlite folder or on
 * `databaseUrl`), the bench fake in another, the steady `load` for `seconds`, and every
 * `intervalSeconds` a row of the gateway's memory, event-loop delay, CPU and jobs (from its `/metrics`)
 * and the clients' latencies. The bundle in `dist/` must be current (`npm run build`).
 */
export async function runSoak(options: {
  seconds: number;
  intervalSeconds?: number;
  databaseUrl?: string | null;
  load?: SoakLoad;
  /** Sees each row as it is taken (progress on a long run). */
  onRow?: (row: SoakRow) => void;
}): Promise<SoakResult> {
  const { seconds, load = SOAK_LOAD } = options;
  const intervalSeconds = options.intervalSeconds ?? soakInterval(seconds);
  const fake = await startChildFake({ BENCH_CHUNKS: '50', BENCH_CHUNK_DELAY_MS: '2' });
  const folder = mkdtempSync(join(tmpdir(), 'sb-bench-soak-'));
  const token = `soak-${randomUUID()}`;
  const configPath = join(folder, 'switchboard.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { tokens: [token] },
      database: { url: options.databaseUrl ?? null, dataDir: join(folder, 'data') },
      backends: { fake: { baseUrl: fake.baseUrl, model: 'bench', concurrency: 8 } },
      roles: { classifier: 'fake', reasoner: 'fake' },
      modes: { daily: 'fake' },
      persona: { name: 'Eid', locale: 'en' },
    }),
  );
  const gateway = await spawnGateway(configPath);
  try {
    const sampler = new SoakSampler(gateway.url, token);
    await sampler.sample(); // Starts every interval figure (the event-loop histogram, the counters) from here.
    const tally = new ClientTally();
    const started = performance.now();
    const until = started + seconds * 1000;
    const wsUrl = `${gateway.url.replace(/^http/, 'ws')}/ws`;
    const clients = [
      ...Array.from({ length: load.wsClients }, () => chatter(wsUrl, token, load, until, tally)),
      caller(`${gateway.url}/v1/chat/completions`, token, load, until, tally),
    ];
    const rows: SoakRow[] = [];
    for (let at = intervalSeconds; at <= seconds + 1e-9; at += intervalSeconds) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + at * 1000 - performance.now())));
      const row: SoakRow = { at, ...(await sampler.sample()), ...tally.take() };
      rows.push(row);
      options.onRow?.(row);
    }
    await Promise.all(clients);
    return { load, seconds, intervalSeconds, rows, newConversations: tally.newConversations };
  } finally {
    await gateway.stop();
    fake.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}

/**
 * `npm run bench -- --soak 10m`: runs only the soak, prints it and writes `BENCHMARKS-SOAK.md` (the full
 * bench's `BENCHMARKS.md` is left alone). Resolves with the exit code: 2 for a bad duration.
 */
export async function soakCommand(args: string[], machine: string): Promise<number> {
  const text = args[args.indexOf('--soak') + 1];
  const seconds = parseSoakDuration(text);
  if (seconds === null) {
    process.stderr.write(`--soak needs a duration such as 30s, 10m, 2h or plain seconds, not ${JSON.stringify(text ?? '')}.\n`);
    return 2;
  }
  execFileSync(process.execPath, [new URL('../scripts/build.mjs', import.meta.url).pathname], { stdio: 'inherit' });
  const databaseUrl = process.env.BENCH_DATABASE_URL ?? null;
  const report = new BenchmarksFile();
  report.say(`machine: ${machine}; store: ${databaseUrl === null ? 'PGlite (a fresh folder)' : 'PostgreSQL (BENCH_DATABASE_URL)'}\n`);
  const progress = (row: SoakRow) =>
    process.stderr.write(`soak ${row.at}/${seconds} s: ${row.jobsDone} jobs done, ${row.jobsFailed} failed, ${row.clientErrors} client errors, RSS ${row.rssMiB.toFixed(0)} MiB\n`);
  for (const line of soakLines(await runSoak({ seconds, databaseUrl, onRow: progress }))) report.say(line);
  report.write(new URL('../BENCHMARKS-SOAK.md', import.meta.url).pathname, machine, new Date(), {
    title: 'Soak',
    command: `npm run bench -- --soak ${text}`,
    about: [
      [
        'The gateway under a steady mixed load for the whole run, sampled at a fixed interval: its memory and',
        'event-loop delay (from its own `GET /metrics`), the jobs it ended, and the latency its clients saw; then',
        'the slope of RSS and heap over the second half and whether the event-loop delay stayed flat. How to read',
        'it: the README, section Performance.',
      ].join('\n'),
      [
        'Run it again: `npm ci && npm run bench -- --soak 10m` (any duration: `30s`, `2h`, plain seconds; on',
        'PostgreSQL with `BENCH_DATABASE_URL=postgres://…`). It rewrites this file and nothing else.',
      ].join('\n'),
    ],
  });
  console.log('written to BENCHMARKS-SOAK.md');
  return 0;
}
