import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readMetric, startBenchGateway } from './bench-gateway.js';
import { ChatSocket, type SentChat } from './chat-socket.js';
import { startGatedFake } from './gated-fake.js';
import { collectGarbage, inspectorNodeArgs } from './inspector-gc.js';

/** The gateway process at one moment, MiB: its resident set, and its main thread's V8 heap in use. */
export interface MemoryReading {
  rssMiB: number;
  heapUsedMiB: number;
}

/** One moment read twice: as it is (what `ps` shows), then after a GC forced through the inspector. */
export interface MemoryMoment {
  asIs: MemoryReading;
  afterGc: MemoryReading;
}

/** The gateway's memory idle, with jobs held in flight, and after more jobs have passed. */
export interface GatewayMemory {
  idle: MemoryMoment;
  inFlight: MemoryMoment;
  /** After the held jobs ended and `after` more ran through, and a settle period. */
  after: MemoryMoment;
  /** RSS after − idle, both after a forced GC: what "back to idle" is judged on, MiB. */
  backMiB: number;
  /** RSS after − idle as read before the GC (garbage not yet collected included), MiB. */
  backAsIsMiB: number;
  inFlightJobs: number;
  afterJobs: number;
  settleSeconds: number;
  /** How every job ended, by terminal event. */
  ended: Record<string, number>;
}

/** Jobs run before the idle reading. */
const WARM_UP = 100;

/** VmRSS of a process and its main heap in use (the gateway's `nodejs_heap_size_used_bytes`), MiB. */
async function reading(pid: number, url: string): Promise<MemoryReading> {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  const heapUsed = await readMetric(url, 'nodejs_heap_size_used_bytes');
  return { rssMiB: Number.parseInt(line?.replace(/\D+/g, '') ?? '', 10) / 1024, heapUsedMiB: heapUsed / 2 ** 20 };
}

/**
 * Memory of the gateway in its own process (as `npm start` runs it; `dist/` built first): idle after a
 * warm-up of {@link WARM_UP} jobs, with
 * `inFlightJobs` auto jobs held in flight (the fake holds every classifier call; the backend runs 64 at
 * once, the rest wait in its mailbox), then after releasing them and running `afterJobs` more through,
 * 100 at a time. Each moment follows `settleSeconds` of quiet and is read as it is (what `ps` would show),
 * then again after a full GC forced through the inspector (the child runs with `--inspect` on 127.0.0.1
 * for this; the gateway itself never forces one), so that garbage V8 has not collected yet is told apart
 * from memory that stays.
 */
export async function benchGatewayMemory(databaseUrl: string | null, inFlightJobs = 1_000, afterJobs = 2_000, settleSeconds = 10): Promise<GatewayMemory> {
  const fake = await startGatedFake();
  const inspector = await inspectorNodeArgs();
  const gateway = await startBenchGateway(fake.baseUrl, databaseUrl, 64, inspector.nodeArgs);
  const sockets = await Promise.all(Array.from({ length: 10 }, () => ChatSocket.connect(gateway.wsUrl)));
  const ended: Record<string, number> = {};
  const count = async (chats: SentChat[]) => {
    for (const event of await Promise.all(chats.map((chat) => chat.ended))) ended[event] = (ended[event] ?? 0) + 1;
  };
  const settled = async (): Promise<MemoryMoment> => {
    await sleep(settleSeconds * 1000);
    const asIs = await reading(gateway.pid, gateway.url);
    await collectGarbage(inspector.port);
    return { asIs, afterGc: await reading(gateway.pid, gateway.url) };
  };
  try {
    // A warm-up first, as the reliability suite's load test does: what is built once — code the JIT
    // compiles, the embedded database's buffers and WebAssembly heap growing to their working size,
    // pooled connections — belongs to the idle reading, not to what 2000 jobs leave behind.
    await Promise.all(sockets.map(async (socket, s) => count(await socket.chats(Array.from({ length: WARM_UP / sockets.length }, (_, i) => `warm ${s}-${i}`)))));
    const idle = await settled();
    fake.close();
    const perSocket = Math.ceil(inFlightJobs / sockets.length);
    const held = (await Promise.all(sockets.map((socket, s) => socket.chats(Array.from({ length: perSocket }, (_, i) => `held ${s}-${i}`))))).flat();
    const inFlight = await settled();
    if ((await fake.report()).concurrent < 64) throw new Error('the held jobs did not reach the fake');
    fake.open();
    await count(held);
    // `afterJobs` more, ten at a time on each of the ten connections.
    await Promise.all(
      sockets.map(async (socket, s) => {
        for (let i = 0; i < afterJobs / sockets.length; i += 10) await count(await socket.chats(Array.from({ length: 10 }, (_, j) => `after ${s}-${i + j}`)));
      }),
    );
    const after = await settled();
    const backMiB = after.afterGc.rssMiB - idle.afterGc.rssMiB;
    const backAsIsMiB = after.asIs.rssMiB - idle.asIs.rssMiB;
    return { idle, inFlight, after, backMiB, backAsIsMiB, inFlightJobs: held.length, afterJobs, settleSeconds, ended };
  } finally {
    for (const socket of sockets) socket.close();
    await gateway.stop();
    await fake.stop();
  }
}
