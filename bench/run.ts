import { cpus, totalmem } from 'node:os';
import { startChildFake } from './child-fake.js';
import { benchMailboxDispatchHttp, benchMailboxDispatchInProcess } from './mailbox-dispatch.js';
import { benchStreaming } from './streaming.js';

/** `npm run bench`: every figure the issues ask for, each against its baseline in the same run. */
const machine = `${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`machine: ${machine}\n`);
const fmt = (n: number, digits = 1) => n.toFixed(digits);

{
  const r = await benchMailboxDispatchInProcess();
  console.log('mailbox dispatch, in process (concurrency 1, a client that answers at once, sequential requests)');
  console.log(`  overhead median ${fmt(r.backend.overheadMedianUs)} µs per request over ${r.backend.requests} — target ≤ 50 µs`);
  console.log(`  for scale: a bare one-machine XState relay costs ${fmt(r.bareRelay.overheadMedianUs)} µs on this machine\n`);
}

{
  const fake = await startChildFake();
  const r = await benchMailboxDispatchHttp(fake.baseUrl);
  console.log('mailbox dispatch over HTTP (undici client, fake in another process, sequential requests)');
  console.log(`  direct client median ${fmt(r.directMedianUs)} µs, through backend actor ${fmt(r.viaMedianUs)} µs`);
  console.log(`  overhead median ${fmt(r.overheadMedianUs)} µs over ${r.requests} requests\n`);
  fake.stop();
}

for (const [label, env] of [
  ['paced like a fast model (200 chunks, 5 ms apart)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '5' }],
  ['unpaced (200 chunks as fast as the fake can write)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '0' }],
] as const) {
  const fake = await startChildFake(env);
  const r = await benchStreaming(fake.baseUrl, 100, Number(env.BENCH_CHUNKS));
  console.log(`streaming, ${r.streams} concurrent streams, ${label}`);
  console.log(`  undici reading raw bytes ${fmt(r.directChunksPerSec, 0)} chunks/s, our client directly ${fmt(r.clientChunksPerSec, 0)}, through backend actor ${fmt(r.actorChunksPerSec, 0)}`);
  console.log(`  actor / raw undici ${fmt(r.ratio * 100)}% — target ≥ 90%; actor / client alone ${fmt(r.actorVsClient * 100)}%\n`);
  fake.stop();
}
process.exit(0);
