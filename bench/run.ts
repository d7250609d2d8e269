import { cpus, totalmem } from 'node:os';
import { startChildFake } from './child-fake.js';
import { benchMailboxDispatch } from './mailbox-dispatch.js';
import { benchStreaming } from './streaming.js';

/** `npm run bench`: every figure the issues ask for, each against its baseline in the same run. */
const machine = `${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`machine: ${machine}\n`);
const fmt = (n: number, digits = 1) => n.toFixed(digits);

{
  const fake = await startChildFake();
  const r = await benchMailboxDispatch(fake.baseUrl);
  console.log('mailbox dispatch (concurrency 1, instant fake, sequential non-streaming requests)');
  console.log(`  direct client median ${fmt(r.directMedianUs)} µs, through backend actor ${fmt(r.actorMedianUs)} µs`);
  console.log(`  overhead median ${fmt(r.overheadMedianUs)} µs (p90 ${fmt(r.overheadP90Us)} µs) over ${r.requests} requests — target ≤ 50 µs\n`);
  fake.stop();
}

for (const [label, env] of [
  ['paced like a fast model (200 chunks, 5 ms apart)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '5' }],
  ['unpaced (200 chunks as fast as the fake can write)', { BENCH_CHUNKS: '200', BENCH_CHUNK_DELAY_MS: '0' }],
] as const) {
  const fake = await startChildFake(env);
  const r = await benchStreaming(fake.baseUrl, 100);
  console.log(`streaming, ${r.streams} concurrent streams, ${label}`);
  console.log(`  undici direct ${fmt(r.directChunksPerSec, 0)} chunks/s, through backend actor ${fmt(r.actorChunksPerSec, 0)} chunks/s`);
  console.log(`  ratio ${fmt(r.ratio * 100)}% — target ≥ 90%\n`);
  fake.stop();
}
process.exit(0);
