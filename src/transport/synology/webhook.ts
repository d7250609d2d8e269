import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { JobEvent } from '../../jobs/job-event.js';
import { PACKAGE_ROOT } from '../../package-root.js';
import { SubmitRejected, type Runtime } from '../../runtime/runtime.js';
import { RefusalLog } from '../refusal-log.js';
import { createDeliveryMachine, realClock, runDelivery, type DeliveryClock, type DeliveryTarget } from './delivery.js';
import { splitMessage } from './split-message.js';

export interface SynologyWebhookOptions {
  runtime: Runtime;
  log: Logger;
  /** Injected for tests: a virtual clock for the spacing and the backoff. */
  clock?: DeliveryClock;
  fetch?: typeof fetch;
  /** Bad tokens one address may send within `badTokenWindowMs` before it gets 429. Default 5. */
  badTokenLimit?: number;
  badTokenWindowMs?: number;
}

export interface SynologyWebhook {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Stops taking posts and aborts the deliveries under way. */
  close(): Promise<void>;
  /** Resolves when every delivery started so far has ended (tests). */
  idle(): Promise<void>;
}

/** The longest webhook body read (Synology's posts are small; a message is at most `limits.messageChars`). */
const MAX_BODY_BYTES = 256 * 1024;
const MAX_TRACKED_ADDRESSES = 10_000;

/** The sentences a busy reasoner's notice can be, in every locale (`processing.reasonerBusy`). */
function busyNotices(): Set<string> {
  const file = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'prompts', 'messages.json'), 'utf8')) as Record<
    string,
    { processing?: { reasonerBusy?: string } }
  >;
  return new Set(Object.values(file).flatMap((locale) => (locale.processing?.reasonerBusy ? [locale.processing.reasonerBusy] : [])));
}

const HANGUL = /[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]/;

/** The reply when a job failed: an apology, then the job's own sentence (already in the user's language). */
export function apology(message: string | undefined, question: string): string {
  const korean = HANGUL.test(question);
  const sorry = korean ? '죄송합니다. 답변을 드리지 못했어요.' : 'Sorry, I could not answer that.';
  return message && message.length > 0 ? `${sorry} ${message}` : sorry;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Compares in constant time (over fixed-length digests, so the length does not leak either). */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendStatus(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status, { 'content-length': 0 });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * `POST /synology/webhook` (DESIGN §5): Synology Chat's outgoing webhook. A wrong token is 403 and runs
 * nothing; an address that keeps sending wrong tokens gets 429 for the rest of the window. A good post is
 * answered 200 at once; the job runs in the user's one conversation, and its answer (or a busy notice
 * first, or an apology) is posted to `synology.incomingUrl` by a delivery actor — split, spaced, retried.
 * Replies to one user go out one delivery after the other, in the order their jobs produced them.
 */
export function createSynologyWebhook(options: SynologyWebhookOptions): SynologyWebhook {
  const { runtime, log } = options;
  const settings = runtime.config.synology;
  if (settings === null) throw new Error('synology is not configured');
  const target: DeliveryTarget = { url: settings.incomingUrl, mode: settings.mode };
  const clock = options.clock ?? realClock;
  const machine = createDeliveryMachine({ clock, fetch: options.fetch ?? fetch, log });
  const badTokenLimit = options.badTokenLimit ?? 5;
  const badTokenWindowMs = options.badTokenWindowMs ?? 60_000;
  const badTokens = new Map<string, { since: number; count: number }>();
  const refusals = new RefusalLog({ log, message: 'synology webhook refused' });
  const busy = busyNotices();
  const abort = new AbortController();
  /** Each user's replies, chained so they go out in order. */
  const chains = new Map<string, Promise<void>>();
  const running = new Set<Promise<void>>();
  /** The deliveries under way or waiting (what `close` waits for, once aborted). */
  const deliveries = new Set<Promise<void>>();
  /** The conversation each Synology user has (the first message makes it). */
  const conversations = new Map<string, string>();
  let closed = false;

  const deliver = (userId: string, jobId: string | null, text: string): void => {
    const parts = splitMessage(text);
    if (parts.length === 0) return;
    const previous = chains.get(userId) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (abort.signal.aborted) return;
      await runDelivery(machine, { target, userId, jobId, parts }, abort.signal);
    });
    chains.set(userId, next);
    running.add(next);
    deliveries.add(next);
    void next.finally(() => {
      running.delete(next);
      deliveries.delete(next);
      if (chains.get(userId) === next) chains.delete(userId);
    });
  };

  const tooManyBadTokens = (address: string): boolean => {
    const entry = badTokens.get(address);
    if (entry === undefined) return false;
    if (clock.now() - entry.since >= badTokenWindowMs) {
      badTokens.delete(address);
      return false;
    }
    return entry.count >= badTokenLimit;
  };

  const noteBadToken = (address: string): void => {
    const entry = badTokens.get(address);
    if (entry !== undefined) entry.count += 1;
    else {
      if (badTokens.size >= MAX_TRACKED_ADDRESSES) {
        const now = clock.now();
        for (const [key, value] of badTokens) if (now - value.since >= badTokenWindowMs) badTokens.delete(key);
        if (badTokens.size >= MAX_TRACKED_ADDRESSES) badTokens.delete(badTokens.keys().next().value as string);
      }
      badTokens.set(address, { since: clock.now(), count: 1 });
    }
  };

  /** Submits the message and follows its job to the end; every path ends in one reply. */
  const answer = async (userId: string, text: string): Promise<void> => {
    const owner = `synology:${userId}`;
    const submit = (conversationId: string | undefined) =>
      runtime.submit({ text, source: 'synology', owner, externalUser: userId, ...(conversationId ? { conversationId } : {}) });
    let accepted;
    try {
      try {
        accepted = await submit(conversations.get(userId));
      } catch (error) {
        if (!(error instanceof SubmitRejected && error.code === 'unknown_conversation')) throw error;
        conversations.delete(userId);
        accepted = await submit(undefined);
      }
    } catch (error) {
      const reason = error instanceof SubmitRejected ? error.code : ((error as { reason?: string }).reason ?? 'internal');
      log.warn({ jobId: null, reason }, 'synology message not accepted');
      deliver(userId, null, apology(error instanceof SubmitRejected ? error.message : undefined, text));
      return;
    }
    conversations.set(userId, accepted.conversationId);
    const { jobId } = accepted;
    let answerText = '';
    const ended = new Promise<JobEvent>((resolve) => {
      void runtime
        .subscribe(jobId, owner, 0, (event) => {
          if (event.event === 'result') answerText += String(event.data.content ?? '');
          else if (event.event === 'processing' && busy.has(String(event.data.message))) deliver(userId, jobId, String(event.data.message));
          if (event.event === 'done' || event.event === 'error' || event.event === 'cancelled') resolve(event);
        })
        .then((unsubscribe) => {
          if (unsubscribe === null) resolve({ jobId, seq: 0, event: 'error', data: { reason: 'unknown_job' }, at: new Date().toISOString() });
        })
        .catch((error: unknown) => {
          resolve({ jobId, seq: 0, event: 'error', data: { reason: (error as { reason?: string }).reason ?? 'internal' }, at: new Date().toISOString() });
        });
    });
    const end = await ended;
    if (end.event === 'done' && answerText.trim().length > 0) {
      deliver(userId, jobId, answerText);
      return;
    }
    const reason = end.event === 'done' ? 'empty_answer' : String(end.data.reason ?? end.event);
    log.warn({ jobId, reason }, 'synology job failed; sending an apology');
    deliver(userId, jobId, apology(typeof end.data.message === 'string' ? end.data.message : undefined, text));
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const address = req.socket.remoteAddress ?? 'unknown';
    if (closed) return sendStatus(res, 503, { error: { type: 'shutting_down', message: 'the gateway is shutting down' } });
    if (tooManyBadTokens(address)) {
      refusals.note(address, { status: 429, reason: 'bad_token_rate' });
      req.resume();
      res.setHeader('retry-after', String(Math.ceil(badTokenWindowMs / 1000)));
      return sendStatus(res, 429, { error: { type: 'rate_limited', message: 'too many wrong tokens; wait a minute' } });
    }
    void readBody(req).then(
      (body) => {
        if (body === null) return sendStatus(res, 413, { error: { type: 'too_large', message: 'the body is too large' } });
        const form = new URLSearchParams(body);
        if (!tokenMatches(form.get('token') ?? '', settings.token)) {
          noteBadToken(address);
          refusals.note(address, { status: 403, reason: 'bad_token' });
          return sendStatus(res, 403, { error: { type: 'forbidden', message: 'wrong token' } });
        }
        const userId = form.get('user_id') ?? '';
        const text = form.get('text') ?? '';
        if (userId.length === 0) return sendStatus(res, 400, { error: { type: 'bad_request', message: 'user_id is missing' } });
        sendStatus(res, 200);
        if (text.trim().length === 0) return;
        const work = answer(userId, text).catch((error: unknown) => log.error({ err: error, jobId: null }, 'synology message failed'));
        running.add(work);
        void work.finally(() => running.delete(work));
      },
      (error: unknown) => {
        log.warn({ reason: (error as Error).message }, 'synology webhook body could not be read');
        if (!res.headersSent) res.destroy();
      },
    );
  };

  const idle = async (): Promise<void> => {
    while (running.size > 0) await Promise.allSettled([...running]);
  };

  return {
    handle,
    idle,
    close: async () => {
      closed = true;
      refusals.close();
      abort.abort(new Error('shutting down'));
      // Jobs still running end with the runtime (stopped after the transports); only deliveries are waited for.
      await Promise.allSettled([...deliveries]);
    },
  };
}
