import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DeliveryLanguage, PendingSynologyDelivery } from '../../actors/store/synology-delivery-store.js';
import { toErrorInfo } from '../../errors.js';
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
  /**
   * For a graceful stop, once the runtime's jobs have ended and before the store closes: stops taking
   * posts, waits for every reply the jobs produced to be stored, lets the deliveries go on until
   * `untilMs` (`Date.now()` time, the end of the grace period) and then aborts them. What was not posted
   * stays in the store, and the next start posts it.
   */
  settle(untilMs: number): Promise<void>;
  /** Stops taking posts and aborts the deliveries under way (their rows stay for the next start). */
  close(): Promise<void>;
  /** Resolves when every message taken so far has its reply handed to a delivery (tests). */
  idle(): Promise<void>;
  /** Resolves once the replies owed from before this start have been read and queued. */
  readonly resumed: Promise<void>;
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
/** However late the grace period ends, the replies of ended jobs get this long to be stored. */
const HANDOVER_MS = 2_000;

/** The language a reply to `question` is apologised in: Korean when it has Hangul. */
export function languageOf(question: string): DeliveryLanguage {
  return HANGUL.test(question) ? 'ko' : 'en';
}

/** The reply when a job failed: an apology, then the job's own sentence (already in the user's language). */
export function apology(message: string | undefined, language: DeliveryLanguage): string {
  const sorry = language === 'ko' ? '죄송합니다. 답변을 드리지 못했어요.' : 'Sorry, I could not answer that.';
  return message && message.length > 0 ? `${sorry} ${message}` : sorry;
}

/** A Synology user in the log: a short hash, enough to tell users apart, not to name one. */
function userTag(userId: string): string {
  return createHash('sha256').update(`synology-user:${userId}`, 'utf8').digest('hex').slice(0, 12);
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

/** A reply owed to a user: its row in the store (when it could be written) and what the log may name. */
interface OwedReply {
  /** The row's id, also the job's `clientMsgId`. */
  id: string;
  userId: string;
  jobId: string | null;
  language: DeliveryLanguage;
  /** The row was written: progress is recorded and the row deleted at the end. */
  durable: boolean;
}

/** How a followed job ended, and its answer. */
interface JobEnding {
  end: JobEvent;
  answer: string;
}

/**
 * `POST /synology/webhook` (DESIGN §5): Synology Chat's outgoing webhook. A wrong token is 403 and runs
 * nothing; an address that keeps sending wrong tokens gets 429 for the rest of the window. A good post is
 * answered 200 at once; the job runs in the user's one conversation, and its answer (or a busy notice
 * first, or an apology) is posted to `synology.incomingUrl` by a delivery actor — split, spaced, retried.
 * Replies to one user go out one delivery after the other, in the order their jobs produced them.
 *
 * The reply is durable (`synology_deliveries`): its row is written before the job is submitted, gets
 * the reply's parts when the job ends and each post's progress, and is deleted once delivered. A start
 * resumes every row left: a finished job's remaining parts, an apology for a job the restart interrupted
 * (or that was never accepted). Delivery is at least once: a part in flight when the process died is
 * posted again; none is lost and the order holds. Busy notices are not kept (they are stale after a restart).
 */
export function createSynologyWebhook(options: SynologyWebhookOptions): SynologyWebhook {
  const { runtime, log } = options;
  const settings = runtime.config.synology;
  if (settings === null) throw new Error('synology is not configured');
  const target: DeliveryTarget = { url: settings.incomingUrl, mode: settings.mode };
  const clock = options.clock ?? realClock;
  const machine = createDeliveryMachine({ clock, fetch: options.fetch ?? fetch, log, onRetry: () => runtime.metrics.countSynologyRetry() });
  const badTokenLimit = options.badTokenLimit ?? 5;
  const badTokenWindowMs = options.badTokenWindowMs ?? 60_000;
  const badTokens = new Map<string, { since: number; count: number }>();
  const refusals = new RefusalLog({ log, message: 'synology webhook refused' });
  const busy = busyNotices();
  const abort = new AbortController();
  /** Each user's replies, chained so they go out in order. */
  const chains = new Map<string, Promise<void>>();
  /** Messages whose reply is not yet handed to a delivery (what `settle` waits for first). */
  const running = new Set<Promise<void>>();
  /** The deliveries under way or waiting (what `settle` and `close` wait for). */
  const deliveries = new Set<Promise<void>>();
  /** The conversation each Synology user has (the first message makes it; after a restart, the store knows it). */
  const conversations = new Map<string, string>();
  let closed = false;
  const store = () => runtime.synologyDeliveries();
  const ownerOf = (userId: string): string => `synology:${userId}`;

  /** A write of the delivery store failed: the reply goes on, only less durably. Logged with the job id. */
  const storeFailed = (what: string, reply: Pick<OwedReply, 'jobId'>) => (error: unknown) => {
    log.warn({ jobId: reply.jobId, reason: toErrorInfo(error).reason, err: error }, `synology delivery: could not ${what}`);
  };

  /** Runs `work` after the user's earlier replies. */
  const enqueue = (userId: string, work: () => Promise<void>): void => {
    const previous = chains.get(userId) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (abort.signal.aborted) return;
      await work();
    });
    const tracked = next.catch((error: unknown) => log.error({ err: error, jobId: null }, 'synology delivery failed unexpectedly'));
    chains.set(userId, tracked);
    deliveries.add(tracked);
    void tracked.finally(() => {
      deliveries.delete(tracked);
      if (chains.get(userId) === tracked) chains.delete(userId);
    });
  };

  /** Posts `parts` from `startAt` on, recording progress; the row goes when they are delivered or given up. */
  const post = async (reply: OwedReply, parts: readonly string[], startAt: number, attempts: number): Promise<void> => {
    if (abort.signal.aborted) return;
    const delivered = await runDelivery(
      machine,
      {
        target,
        userId: reply.userId,
        jobId: reply.jobId,
        parts,
        startAt,
        attempts,
        ...(reply.durable && { onProgress: (next: number, failed: number) => store().setProgress(reply.id, next, failed).catch(storeFailed('record progress', reply)) }),
      },
      abort.signal,
    );
    // Stopped part of the way: the row stays, and the next start goes on from its progress.
    if (!delivered && abort.signal.aborted) return;
    if (reply.durable) await store().remove(reply.id).catch(storeFailed('remove a finished delivery', reply));
  };

  /** The reply is known: stored as parts, then posted after the user's earlier replies. */
  const handOver = async (reply: OwedReply, text: string): Promise<void> => {
    const parts = splitMessage(text);
    if (reply.durable) {
      try {
        await store().setParts(reply.id, parts);
      } catch (error) {
        storeFailed('store a reply', reply)(error);
      }
    }
    enqueue(reply.userId, () => post(reply, parts, 0, 0));
  };

  /** A busy notice: posted in order with the replies, never stored. */
  const notice = (userId: string, jobId: string, text: string): void => {
    const parts = splitMessage(text);
    const reply: OwedReply = { id: '', userId, jobId, language: 'en', durable: false };
    enqueue(userId, () => post(reply, parts, 0, 0));
  };

  /** Follows a job (live, or replayed from the journal) to its terminal event, collecting the answer. */
  const follow = (jobId: string, owner: string, onNotice: ((text: string) => void) | null): Promise<JobEnding> => {
    let answer = '';
    const failed = (reason: string): JobEnding => ({ end: { jobId, seq: 0, event: 'error', data: { reason }, at: new Date().toISOString() }, answer });
    return new Promise<JobEnding>((resolve) => {
      void runtime
        .subscribe(jobId, owner, 0, (event) => {
          if (event.event === 'result') answer += String(event.data.content ?? '');
          else if (event.event === 'processing' && onNotice && busy.has(String(event.data.message))) onNotice(String(event.data.message));
          if (event.event === 'done' || event.event === 'error' || event.event === 'cancelled') resolve({ end: event, answer });
        })
        .then((unsubscribe) => {
          if (unsubscribe === null) resolve(failed('unknown_job'));
        })
        .catch((error: unknown) => resolve(failed(toErrorInfo(error).reason)));
    });
  };

  /** What to post for a job's ending: its answer, or an apology (logged once, with the job id and reason). */
  const replyTo = ({ end, answer }: JobEnding, language: DeliveryLanguage): string => {
    if (end.event === 'done' && answer.trim().length > 0) return answer;
    const reason = end.event === 'done' ? 'empty_answer' : String(end.data.reason ?? end.event);
    log.warn({ jobId: end.jobId, reason }, 'synology job failed; sending an apology');
    return apology(typeof end.data.message === 'string' ? end.data.message : undefined, language);
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

  /** The user's conversation: known here, else the newest the store has for them (after a restart). */
  const conversationOf = async (userId: string, owner: string): Promise<string | undefined> => {
    const known = conversations.get(userId);
    if (known !== undefined) return known;
    try {
      return (await store().latestConversation(userId, owner)) ?? undefined;
    } catch (error) {
      log.warn({ jobId: null, reason: toErrorInfo(error).reason, err: error }, 'synology: could not look up the user\'s conversation');
      return undefined;
    }
  };

  /**
   * Records the reply owed, submits the message and follows its job to the end; every path ends in one
   * reply. The row comes first: once a job exists, a reply is owed for it in the store.
   */
  const answer = async (userId: string, text: string): Promise<void> => {
    const owner = ownerOf(userId);
    const reply: OwedReply = { id: randomUUID(), userId, jobId: null, language: languageOf(text), durable: false };
    try {
      await store().create({ id: reply.id, userId, language: reply.language });
      reply.durable = true;
    } catch (error) {
      // The submit will most likely fail the same way and be apologised for; either way, reply from memory.
      storeFailed('record a reply owed', reply)(error);
    }
    const submit = (conversationId: string | undefined) =>
      runtime.submit({ text, source: 'synology', owner, externalUser: userId, clientMsgId: reply.id, ...(conversationId ? { conversationId } : {}) });
    let accepted;
    try {
      try {
        accepted = await submit(await conversationOf(userId, owner));
      } catch (error) {
        if (!(error instanceof SubmitRejected && error.code === 'unknown_conversation')) throw error;
        conversations.delete(userId);
        accepted = await submit(undefined);
      }
    } catch (error) {
      const reason = error instanceof SubmitRejected ? error.code : toErrorInfo(error).reason;
      log.warn({ jobId: null, reason }, 'synology message not accepted');
      await handOver(reply, apology(error instanceof SubmitRejected ? error.message : undefined, reply.language));
      return;
    }
    conversations.set(userId, accepted.conversationId);
    reply.jobId = accepted.jobId;
    if (reply.durable) await store().setJob(reply.id, accepted.jobId).catch(storeFailed('record the job', reply));
    const ending = await follow(accepted.jobId, owner, (message) => notice(userId, accepted.jobId, message));
    await handOver(reply, replyTo(ending, reply.language));
  };

  /** A reply a stopped process owed: its remaining parts, or (still waiting) its job's ending from the journal. */
  const resume = (row: PendingSynologyDelivery): void => {
    const reply: OwedReply = { id: row.id, userId: row.userId, jobId: row.jobId, language: row.language, durable: true };
    log.info(
      { jobId: row.jobId, user: userTag(row.userId), state: row.state, nextPart: row.nextPart, parts: row.parts.length },
      'resuming a synology delivery',
    );
    if (row.state === 'sending') return enqueue(row.userId, () => post(reply, row.parts, row.nextPart, row.attempts));
    enqueue(row.userId, async () => {
      let text: string;
      if (row.jobId === null) {
        // The process stopped before the message was accepted: there is no job to answer it.
        log.warn({ jobId: null, reason: 'not_accepted' }, 'synology job failed; sending an apology');
        text = apology(undefined, row.language);
      } else {
        // After a restart every job has ended (those it interrupted with `interrupted`): this is a replay.
        text = replyTo(await follow(row.jobId, ownerOf(row.userId), null), row.language);
      }
      const parts = splitMessage(text);
      await store().setParts(row.id, parts).catch(storeFailed('store a reply', reply));
      await post(reply, parts, 0, 0);
    });
  };

  const resumed = (async () => {
    let rows: PendingSynologyDelivery[];
    try {
      rows = await store().pending();
    } catch (error) {
      log.error({ jobId: null, reason: toErrorInfo(error).reason, err: error }, 'could not read the synology replies owed from before this start');
      return;
    }
    for (const row of rows) resume(row);
  })();

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
        // The user's conversation, jobs and owed replies are stored under this id, and PostgreSQL text
        // cannot hold U+0000 (`%00`); replacing it could merge two users, so such an id is refused.
        if (userId.includes('\u0000')) return sendStatus(res, 400, { error: { type: 'bad_request', message: 'user_id must not contain U+0000' } });
        sendStatus(res, 200);
        if (text.trim().length === 0) return;
        // Replies owed from before this start go first (a user's replies keep their order).
        const work = resumed.then(() => answer(userId, text)).catch((error: unknown) => log.error({ err: error, jobId: null }, 'synology message failed'));
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

  /** Waits for everything in `set` (also what joins it meanwhile) to settle, or until `untilMs`. */
  const waitFor = async (set: Set<Promise<void>>, untilMs: number): Promise<void> => {
    while (set.size > 0) {
      const left = untilMs - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, left)));
      await Promise.race([Promise.allSettled([...set]), timedOut]);
      clearTimeout(timer);
    }
  };

  const close = async (): Promise<void> => {
    closed = true;
    refusals.close();
    abort.abort(new Error('shutting down'));
    await Promise.allSettled([...deliveries]);
  };

  return {
    handle,
    idle,
    resumed,
    settle: async (untilMs) => {
      closed = true;
      // The jobs have ended: their replies are a store write away from safe, even when the grace is over.
      await waitFor(running, Math.max(untilMs, Date.now() + HANDOVER_MS));
      await waitFor(deliveries, untilMs);
      if (deliveries.size > 0) log.info({ deliveries: deliveries.size }, 'grace period over: synology replies not yet posted are kept for the next start');
      await close();
    },
    close,
  };
}
