import type { Logger } from 'pino';
import { createActor, fromPromise, setup } from 'xstate';

/** What the delivery needs from the world: injected so tests run on a virtual clock. */
export interface DeliveryClock {
  /** Milliseconds since some epoch (only differences matter). */
  now(): number;
  /** Resolves after `ms`; rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: DeliveryClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }),
};

export interface DeliveryTarget {
  /** `synology.incomingUrl`. */
  url: string;
  mode: 'incoming' | 'chatbot';
}

export interface DeliveryInput {
  target: DeliveryTarget;
  /** The Synology user the answer is for (`user_ids` in chatbot mode). */
  userId: string;
  /** For the log only. */
  jobId: string | null;
  /** The parts, in order, each at most 2000 characters. */
  parts: readonly string[];
  /** The first part to post (the ones before it were posted before a restart). Default 0. */
  startAt?: number;
  /** Failed posts of the first part to post so far (before a restart). Default 0. */
  attempts?: number;
  /**
   * Called, and waited for, after each post: parts before `nextPart` are delivered, `attempts` posts of
   * `nextPart` have failed. The webhook makes it durable, so a restart goes on from there: only a part
   * in flight when the process died can arrive twice.
   */
  onProgress?: (nextPart: number, attempts: number) => Promise<void>;
}

export interface DeliveryDeps {
  clock: DeliveryClock;
  fetch: typeof fetch;
  log: Logger;
  /** A post failed and will be tried again (the metrics' retry counter). */
  onRetry?: () => void;
}

/** Least time between two posts (DESIGN §5). */
export const PART_SPACING_MS = 500;
/** Attempts per part before it is given up. */
export const MAX_ATTEMPTS = 6;
const BASE_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A 429's Retry-After is honoured up to this. */
const MAX_RETRY_AFTER_MS = 120_000;
const REQUEST_TIMEOUT_MS = 10_000;

class PostFailed extends Error {
  constructor(
    readonly reason: string,
    readonly waitMs: number | null,
  ) {
    super(reason);
  }
}

/** The form body Synology takes: `payload={"text":…}` (with `user_ids` for the bot API). */
export function payloadBody(target: DeliveryTarget, userId: string, text: string): string {
  const payload: Record<string, unknown> = { text };
  if (target.mode === 'chatbot') {
    const asNumber = Number(userId);
    payload.user_ids = [Number.isSafeInteger(asNumber) ? asNumber : userId];
  }
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

function retryAfterMs(header: string | null, now: number): number | null {
  if (header === null) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(header);
  if (Number.isNaN(date)) return null;
  return Math.min(Math.max(date - now, 0), MAX_RETRY_AFTER_MS);
}

async function postOnce(deps: DeliveryDeps, input: DeliveryInput, text: string, signal: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  let response: Response;
  try {
    response = await deps.fetch(input.target.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: payloadBody(input.target, input.userId, text),
      signal: AbortSignal.any([signal, timeout]),
    });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new PostFailed(timeout.aborted ? 'timeout' : `unreachable (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message})`, null);
  }
  const body = await response.text().catch(() => '');
  if (response.status === 429) throw new PostFailed('http 429', retryAfterMs(response.headers.get('retry-after'), Date.now()));
  if (!response.ok) throw new PostFailed(`http ${response.status}`, null);
  // Synology answers 200 with {"success":false,"error":{"code":…}} when it refuses a post.
  try {
    const parsed = JSON.parse(body) as { success?: unknown; error?: { code?: unknown } };
    if (parsed.success === false) throw new PostFailed(`refused (code ${String(parsed.error?.code ?? 'unknown')})`, null);
  } catch (error) {
    if (error instanceof PostFailed) throw error;
  }
}

/**
 * Posts the parts in order, at least `PART_SPACING_MS` apart, each retried with exponential backoff (a
 * 429's Retry-After honoured) up to `MAX_ATTEMPTS`. Resolves with the number of parts delivered; rejects
 * with the last failure's reason when a part could not be delivered (the rest are not sent).
 */
export async function deliverParts(deps: DeliveryDeps, input: DeliveryInput, signal: AbortSignal): Promise<number> {
  let lastPostAt: number | null = null;
  const startAt = input.startAt ?? 0;
  for (const [index, text] of input.parts.entries()) {
    if (index < startAt) continue;
    for (let attempt = index === startAt ? (input.attempts ?? 0) + 1 : 1; ; attempt += 1) {
      if (lastPostAt !== null) {
        const wait = lastPostAt + PART_SPACING_MS - deps.clock.now();
        if (wait > 0) await deps.clock.sleep(wait, signal);
      }
      lastPostAt = deps.clock.now();
      try {
        await postOnce(deps, input, text, signal);
      } catch (error) {
        if (!(error instanceof PostFailed)) throw error;
        const fields = { jobId: input.jobId, part: index + 1, parts: input.parts.length, attempt, reason: error.reason };
        if (attempt >= MAX_ATTEMPTS) {
          deps.log.error(fields, 'synology delivery failed');
          throw new Error(error.reason);
        }
        await input.onProgress?.(index, attempt);
        deps.onRetry?.();
        const backoff = error.waitMs ?? Math.min(BASE_BACKOFF_MS * 2 ** (attempt - 1), MAX_BACKOFF_MS);
        deps.log.warn({ ...fields, retryInMs: backoff }, 'synology post failed, retrying');
        await deps.clock.sleep(backoff, signal);
        continue;
      }
      await input.onProgress?.(index + 1, 0);
      break;
    }
  }
  return input.parts.length;
}

/** One delivery: an invoked promise actor, so the posting is a side effect the machine only waits for. */
export function createDeliveryMachine(deps: DeliveryDeps) {
  return setup({
    types: { input: {} as DeliveryInput, context: {} as DeliveryInput },
    actors: {
      deliverParts: fromPromise<number, DeliveryInput>(({ input, signal }) => deliverParts(deps, input, signal)),
    },
  }).createMachine({
    id: 'synologyDelivery',
    context: ({ input }) => input,
    initial: 'delivering',
    states: {
      delivering: {
        invoke: { src: 'deliverParts', input: ({ context }) => context, onDone: 'delivered', onError: 'failed' },
      },
      delivered: { type: 'final' },
      failed: { type: 'final' },
    },
  });
}

/** Runs one delivery to its end; resolves true when every part arrived. Stopping the returned actor aborts it. */
export function runDelivery(machine: ReturnType<typeof createDeliveryMachine>, input: DeliveryInput, signal: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const actor = createActor(machine, { input });
    const onAbort = (): void => {
      actor.stop();
      resolve(false);
    };
    actor.subscribe((snapshot) => {
      if (snapshot.status === 'done') {
        signal.removeEventListener('abort', onAbort);
        resolve(snapshot.value === 'delivered');
      }
    });
    signal.addEventListener('abort', onAbort, { once: true });
    actor.start();
  });
}
