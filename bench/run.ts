import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { startChildFake } from './child-fake.js';
import { startGatewayOnce, type GatewayStart } from './gateway-start.js';
import { benchJobMemory } from './job-memory.js';
import { benchGatewayMemory, type MemoryMoment } from './gateway-memory.js';
import { benchJobs } from './jobs.js';
import { benchMailboxDispatchHttp, benchMailboxDispatchInProcess } from './mailbox-dispatch.js';
import { benchMailboxQueue } from './mailbox-queue.js';
import { benchOpenAiApi } from './openai-api.js';
import { benchOpenAiLoad, type OpenLoopRun } from './openai-load.js';
import { benchStreaming } from './streaming.js';
import { BenchmarksFile } from './benchmarks-file.js';
import { soakCommand } from './soak.js';

/** `npm run bench`: every figure the issues ask for, each against its baseline in the same run. */
const report = new BenchmarksFile();
const machine = `${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
// `--soak 10m`: the soak alone (bench/soak.ts), written to BENCHMARKS-SOAK.md.
if (process.argv.includes('--soak')) process.exit(await soakCommand(process.argv, machine));
report.say(`machine: ${machine}\n`);
// Rows that run the gateway in its own process run it as `npm start` does: on the bundle, built once here.
execFileSync(process.execPath, [new URL('../scripts/build.mjs', import.meta.url).pathname], { stdio: 'inherit' });
const fmt = (n: number, digits = 1) => n.toFixed(digits);

{
  const r = await benchMailboxDispatchInProcess();
  report.say('mailbox dispatch, in process (concurrency 1, a client that answers at once, sequential requests)');
  report.say(`  overhead median ${fmt(r.backend.overheadMedianUs)} µs per request over ${r.backend.requests} — target ≤ 50 µs`);
  report.say(`  for scale: a bare one-machine XState relay costs ${fmt(r.bareRelay.overheadMedianUs)} µs on this machine\n`);
}

{
  const fake = await startChildFake();
  const r = await benchMailboxDispatchHttp(fake.baseUrl);
  report.say('mailbox dispatch over HTTP (undici client, fake in another process, sequential requests)');
  report.say(`  direct client median ${fmt(r.directMedianUs)} µs, through backend actor ${fmt(r.viaMedianUs)} µs`);
  report.say(`  overhead median ${fmt(r.overheadMedianUs)} µs over ${r.requests} requests\n`);
  fake.stop();
}

for (const [label, env] of [
  ['paced like a fast model (200 chunks, 5 ms apart)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '5' }],
  ['unpaced (200 chunks as fast as the fake can write)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '0' }],
] as const) {
  const fake = await startChildFake(env);
  const r = await benchStreaming(fake.baseUrl, 100, Number(env.BENCH_CHUNKS));
  report.say(`streaming, ${r.streams} concurrent streams, ${label}`);
  report.say(`  undici reading raw bytes ${fmt(r.directChunksPerSec, 0)} chunks/s, our client directly ${fmt(r.clientChunksPerSec, 0)}, through backend actor ${fmt(r.actorChunksPerSec, 0)}`);
  report.say(`  actor / raw undici ${fmt(r.ratio * 100)}% — target ≥ 90%; actor / client alone ${fmt(r.actorVsClient * 100)}%\n`);
  fake.stop();
}
const benchDatabaseUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
for (const [store, databaseUrl] of [['PGlite', null], ['PostgreSQL', benchDatabaseUrl ?? null]] as const) {
  if (store === 'PostgreSQL' && databaseUrl === null) {
    report.say('jobs on PostgreSQL: not measured (set BENCH_DATABASE_URL)\n');
    continue;
  }
  const fake = await startChildFake();
  const r = await benchJobs(fake.baseUrl, [1, 100, 1000], databaseUrl);
  report.say(`jobs end to end over WebSocket (direct branch, instant fake) vs the bare job machine in process, store ${store}`);
  for (const level of r.levels) {
    report.say(`  concurrency ${level.concurrency}: ${fmt(level.endToEnd, 0)} jobs/s vs bare ${fmt(level.bare, 0)} jobs/s = ${fmt((level.endToEnd / level.bare) * 100)}% — target ≥ 50%`);
    if (level.durableFloor !== null) {
      report.say(`    the floor at this concurrency: the durable relay (below) ${fmt(level.durableFloor, 0)} jobs/s = ${fmt((level.durableFloor / level.bare) * 100)}% of bare; ours is ${fmt((level.endToEnd / level.durableFloor) * 100)}% of it`);
    }
  }
  const spread = (s: { median: number; p99: number }) => `median ${fmt(s.median, 2)} ms, p99 ${fmt(s.p99, 2)} ms`;
  report.say(`  write-ahead: each event waits for its commit before delivery — one chat at a time ${spread(r.writeAheadSequentialMs)};`);
  report.say(`    under load ${r.levels.map((level) => `c=${level.concurrency} ${spread(level.writeAheadMs)}`).join('; ')}`);
  report.say(`  an auto job (classifier, then the direct branch), chat frame → first result: median ${fmt(r.firstResultMedianMs, 2)} ms, of which the fake backend's own time (request sent → response received) median ${fmt(r.fakePerJobMedianMs, 2)} ms; our overhead per job median ${fmt(r.overheadMedianMs, 2)} ms`);
  report.say(`  the floor, measured the same way: a bare relay on the same libraries (ws → undici → ws, no jobs or store) median ${fmt(r.relayFloorOverheadMedianMs, 2)} ms;`);
  report.say(`  the same relay writing the message to ${store} (our accept statement) before \`accepted\`, in parallel with the call, and each event before sending it (our journal): median ${fmt(r.durableRelayFloorOverheadMedianMs, 2)} ms`);
  report.say(`  above the durable floor: median ${fmt(r.overheadMedianMs - r.durableRelayFloorOverheadMedianMs, 2)} ms — target ≤ 0.5 ms (our overhead's median less the durable relay's, same run)`);
  report.say(`  for scale: the fake answering back-to-back direct calls: median ${fmt(r.fakeMedianMs, 2)} ms\n`);
  fake.stop();
}

{
  const fake = await startChildFake();
  const r = await benchOpenAiApi(fake.baseUrl);
  const ms = (n: number) => `${fmt(n, 2)} ms`;
  report.say(`OpenAI API, a mode (daily) against the instant fake, streamed, sequential, ${r.rounds} rounds side by side`);
  report.say(`  direct median ${ms(r.direct.median)}, p99 ${ms(r.direct.p99)}; through /v1/chat/completions median ${ms(r.via.median)}, p99 ${ms(r.via.p99)}`);
  report.say(`  overhead median ${ms(r.overheadMedianMs)} — target ≤ 0.3 ms; p99 ${ms(r.overheadP99Ms)} — target ≤ 2 ms`);
  report.say(`  the floor, measured the same way: a bare HTTP relay (node:http → fetch → piped back) median ${ms(r.floorOverheadMedianMs)}, p99 ${ms(r.floorOverheadP99Ms)}\n`);
  fake.stop();
}

{
  const seconds = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
  const fake = await startChildFake();
  const r = await benchOpenAiLoad(fake.baseUrl, 1_000, seconds);
  const ms = (n: number) => `${fmt(n, 1)} ms`;
  const run = (label: string, x: OpenLoopRun) =>
    report.say(`  ${label}: ${x.completed} of ${x.offered} answered, ${x.errors} errors${x.errors > 0 ? ` (${Object.entries(x.errorKinds).map(([kind, n]) => `${kind}: ${n}`).join(', ')})` : ''}, ${fmt(x.achievedPerSec, 0)}/s; latency from the intended send time median ${ms(x.latency.median)}, p99 ${ms(x.latency.p99)}`);
  report.say(`OpenAI API under load: a mode, streamed, 1000 requests/s offered for ${seconds} s, open loop (BENCH_LOAD_SECONDS to change)`);
  run('directly to the fake', r.direct);
  run('through the gateway (its own process, as npm start runs it)', r.via);
  report.say(`  overhead p99 ${ms(r.overheadP99Ms)}, median ${ms(r.overheadMedianMs)} — target p99 ≤ 5 ms, no errors`);
  run('the floor, the same offer to a bare relay in its own process (node:http → undici → piped back)', r.floor);
  report.say(`  the floor's overhead p99 ${ms(r.floorOverheadP99Ms)}, median ${ms(r.floorOverheadMedianMs)}\n`);
  fake.stop();
}

{
  const holding = await startChildFake({ BENCH_HOLD: '1' });
  const r = await benchJobMemory(holding.baseUrl);
  report.say(`heap per in-flight job: ${fmt(r.perJobBytes / 1024)} KB over 1000 held jobs${r.measured ? '' : ' (no --expose-gc: not reliable)'} — target ≤ 20 KB`);
  holding.stop();
}

{
  // The real gateway in its own process, as `npm start` runs it: what a user's machine gives it.
  const fake = await startChildFake();
  const folder = mkdtempSync(join(tmpdir(), 'sb-bench-start-'));
  const line = (label: string, r: GatewayStart) =>
    report.say(`  ${label}: idle RSS ${fmt(r.idleRssMiB, 0)} MiB, start → /healthz ok ${fmt(r.toHealthzMs / 1000, 1)} s`);
  report.say('the gateway at idle (as npm start runs it, in its own process, one backend, two seconds after /healthz ok)');
  const first = await startGatewayOnce(folder, fake.baseUrl, null);
  line('PGlite, first start (copies the template `npm ci` made)', first);
  line('PGlite, restart (reopens it)', await startGatewayOnce(folder, fake.baseUrl, null));
  report.say('    target ≤ 300 MiB idle on PGlite, first start → /healthz ≤ 8 s');
  if (benchDatabaseUrl) line('PostgreSQL', await startGatewayOnce(folder, fake.baseUrl, benchDatabaseUrl));
  else report.say('  PostgreSQL: not measured (set BENCH_DATABASE_URL)');
  rmSync(folder, { recursive: true, force: true });
  fake.stop();
}

{
  // The gateway as npm start runs it (dist/ is built above), memory while jobs come and go.
  const settle = 10;
  const mib = (n: number) => fmt(n, 0);
  report.say(`\nthe gateway's memory with jobs (as npm start runs it, one backend of 64 slots, auto jobs over WebSocket; idle after a warm-up of 100 jobs; each moment read after ${settle} s of quiet as it is, then after a full GC forced through the inspector)`);
  for (const [store, databaseUrl] of [['PGlite', null], ['PostgreSQL', benchDatabaseUrl ?? null]] as const) {
    if (store === 'PostgreSQL' && databaseUrl === null) {
      report.say('  PostgreSQL: not measured (set BENCH_DATABASE_URL)');
      continue;
    }
    const r = await benchGatewayMemory(databaseUrl, 1_000, 2_000, settle);
    const signed = (n: number) => `${n >= 0 ? '+' : ''}${mib(n)}`;
    const moments = (read: (m: MemoryMoment) => number) => [r.idle, r.inFlight, r.after].map((m) => mib(read(m))).join(' → ');
    report.say(`  ${store}, after the GC: RSS idle ${mib(r.idle.afterGc.rssMiB)} MiB, ${r.inFlightJobs} jobs in flight ${mib(r.inFlight.afterGc.rssMiB)} MiB, after ${r.afterJobs} more jobs ${mib(r.after.afterGc.rssMiB)} MiB = idle ${signed(r.backMiB)} MiB — back to idle within 25 MiB: ${r.backMiB <= 25 ? 'yes' : 'no'}`);
    report.say(`    as it is before the GC (what ps shows, garbage not yet collected included): RSS ${moments((m) => m.asIs.rssMiB)} MiB = idle ${signed(r.backAsIsMiB)} MiB`);
    report.say(`    V8 heap in use after the GC ${moments((m) => m.afterGc.heapUsedMiB)} MiB, before it ${moments((m) => m.asIs.heapUsedMiB)} MiB; jobs ended: ${Object.entries(r.ended).map(([event, n]) => `${event} ${n}`).join(', ')}`);
  }
  report.say('    target: idle ≤ 300 MiB on PGlite; back within 25 MiB of idle — idle RSS itself differs by ±25 MiB from one start to the next, so less cannot be told from noise\n');
}

{
  const r = await benchMailboxQueue(null, 500);
  report.say(`mailbox end to end: a backend of concurrency 1, ${r.jobs} jobs of one owner sent over WebSocket while the fake held the first (${r.queued} waiting in the mailbox at release), the gateway as npm start runs it`);
  report.say(`  highest concurrency at the fake ${r.maxConcurrent} (must be 1), order FIFO ${r.fifo ? 'yes' : `no (first out of place: #${r.firstOutOfOrder})`}, dispatch gap median ${fmt(r.gapMs.median, 2)} ms p99 ${fmt(r.gapMs.p99, 2)} ms`);
  report.say(`    the gap: one response's end → the next request's arrival, in the fake's own clock; jobs ended: ${Object.entries(r.ended).map(([event, n]) => `${event} ${n}`).join(', ')}`);
}
report.write(new URL('../BENCHMARKS.md', import.meta.url).pathname, machine, new Date());
console.log('written to BENCHMARKS.md');
process.exit(0);
