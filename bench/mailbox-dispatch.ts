import { randomUUID } from 'node:crypto';
import { createActor, fromCallback, setup, sendTo, type AnyActorRef } from 'xstate';
import type { ChatResult, InferenceClient } from '../src/actors/inference/types.js';
import type { BackendReply } from '../src/machines/backend-protocol.js';
import { provideBackendMachine } from '../src/runtime/provide-backend-machine.js';
import { benchBackend, stats } from './harness.js';

const request = { messages: [{ role: 'user' as const, content: 'hi' }] };

/**
 * Dispatch overhead of the mailbox against the real undici client and the fake in another process:
 * the same non-streaming completion called on the client directly and through the backend actor,
 * interleaved in blocks so both see the same machine.
 */
export async function benchMailboxDispatchHttp(baseUrl: string, rounds = 20, block = 100) {
  const { client, send, stop } = benchBackend(baseUrl, 1);
  const signal = new AbortController().signal;
  const direct: number[] = [];
  const viaActor: number[] = [];
  for (let i = 0; i < 300; i++) await client.complete(request, signal);
  for (let i = 0; i < 300; i++) await send(request, 'complete');
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await client.complete(request, signal);
      direct.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      const reply = await send(request, 'complete');
      viaActor.push(performance.now() - t);
      if (reply.type !== 'infer.done') throw new Error(`bench request failed: ${reply.type}`);
    }
  }
  stop();
  return overhead(direct, viaActor);
}

/** The overhead in µs from two samples of milliseconds. */
function overhead(direct: number[], via: number[]) {
  const d = stats(direct);
  const a = stats(via);
  return {
    requests: direct.length,
    directMedianUs: d.median * 1000,
    viaMedianUs: a.median * 1000,
    overheadMedianUs: (a.median - d.median) * 1000,
  };
}

const instantResult: ChatResult = { content: 'x', toolCalls: [], finishReason: 'stop' };
/** A client that answers at once: what remains is the mailbox alone, with no network jitter. */
const instantClient: InferenceClient = {
  complete: async () => instantResult,
  stream: async () => instantResult,
  listModels: async () => ['bench'],
  fetchStatus: async () => null,
};

/** Sends requests one after another to `target` and times each until its terminal reply. */
async function timeSequential(target: AnyActorRef, count: number): Promise<number[]> {
  let resolveOne: () => void = () => {};
  const requester = createActor(
    fromCallback<BackendReply>(({ receive }) => {
      receive((reply) => {
        if (reply.type === 'infer.done' || reply.type === 'infer.error') resolveOne();
      });
    }),
  ).start();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      resolveOne = resolve;
      target.send({ type: 'infer.request', requestId: randomUUID(), priority: 'foreground', kind: 'complete', request, replyTo: requester });
    });
    times.push(performance.now() - t);
  }
  requester.stop();
  return times;
}

/**
 * The smallest XState relay there is — one machine that forwards a request to a callback actor calling
 * the client and forwards the answer back — as the floor any actor in between costs on this machine.
 */
function bareRelay(client: InferenceClient): AnyActorRef {
  const caller = fromCallback<{ type: 'start'; requestId: string }>(({ sendBack, receive }) => {
    receive((command) => {
      void client
        .complete(request, new AbortController().signal)
        .then((result) => sendBack({ type: 'done', requestId: command.requestId, result }));
    });
  });
  const machine = setup({
    types: { context: {} as { replyTo: AnyActorRef | null }, events: {} as { type: string; requestId: string; replyTo?: AnyActorRef; result?: ChatResult } },
    actors: { caller },
  }).createMachine({
    context: { replyTo: null },
    invoke: { id: 'call', src: 'caller' },
    on: {
      'infer.request': {
        actions: [
          ({ context, event }) => void (context.replyTo = event.replyTo ?? null),
          sendTo('call', ({ event }) => ({ type: 'start', requestId: event.requestId })),
        ],
      },
      done: { actions: sendTo(({ context }) => context.replyTo as AnyActorRef, ({ event }) => ({ type: 'infer.done', requestId: event.requestId, result: event.result })) },
    },
  });
  return createActor(machine).start();
}

/**
 * The mailbox's own cost per request, in process: an instant client called directly, through a bare
 * one-machine XState relay, and through the backend actor, interleaved in blocks.
 */
export async function benchMailboxDispatchInProcess(rounds = 20, block = 500) {
  const backend = createActor(provideBackendMachine({ client: instantClient, model: 'bench', probeTimeoutMs: 1_000 }), {
    input: { name: 'bench', concurrency: 1, maxBackgroundWaitMs: 10_000, healthIntervalMs: 3_600_000 },
  }).start();
  const relay = bareRelay(instantClient);
  const signal = new AbortController().signal;
  const direct: number[] = [];
  const viaRelay: number[] = [];
  const viaBackend: number[] = [];
  await timeSequential(backend, 2_000);
  await timeSequential(relay, 2_000);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await instantClient.complete(request, signal);
      direct.push(performance.now() - t);
    }
    viaRelay.push(...(await timeSequential(relay, block)));
    viaBackend.push(...(await timeSequential(backend, block)));
  }
  backend.stop();
  relay.stop();
  return { backend: overhead(direct, viaBackend), bareRelay: overhead(direct, viaRelay) };
}
