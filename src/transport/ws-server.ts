import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Config } from '../config/config-schema.js';
import { toErrorInfo } from '../errors.js';
import { isTerminal, type JobEvent } from '../jobs/job-event.js';
import { SubmitRejected, type Runtime, type Unsubscribe } from '../runtime/runtime.js';
import { createAuthenticator } from './authenticator.js';
import { createHostCheck } from './host-check.js';
import { RefusalLog, type Refusal } from './refusal-log.js';
import {
  parseClientFrame,
  type ChatFrame,
  type ClientFrame,
  type ErrorFrame,
  type FrameLimits,
  type ServerFrame,
  type WsErrorCode,
} from './ws-frames.js';

/** Options of `attachWebSocket`; everything but the three dependencies has a production default. */
export interface WebSocketOptions {
  runtime: Runtime;
  config: Config;
  log: Logger;
  /** The endpoint (DESIGN §4: `/ws`). */
  path?: string;
  /** Frames per second per connection (a token bucket with this burst). Default `config.limits.framesPerSecond`. */
  maxFramesPerSecond?: number;
  /**
   * Bytes a connection's socket may hold unsent before further frames wait in the connection's queue
   * for the socket's 'drain'. Default 256 KiB (never below the socket's own high-water mark).
   */
  highWaterBytes?: number;
  /** Bytes of frames waiting in a connection's queue beyond which it is closed with 1013. Default 32 MiB. */
  maxQueuedBytes?: number;
  /** A connection whose queued frames could not be written for this long is closed with 1013. Default 60 s. */
  stallMs?: number;
  /** Bytes of one client frame. Default: 64 KiB, or more when `limits.messageChars` needs it. */
  maxFrameBytes?: number;
  /** Protocol-level ping interval; a peer that missed the previous ping is terminated. Default 30 s. */
  heartbeatMs?: number;
  /** Monotonic milliseconds for the once-a-minute refusal log; tests pass their own clock. */
  now?: () => number;
}

/** The attached WebSocket endpoint. */
export interface AttachedWebSocket {
  /** Stops accepting upgrades, closes every connection with 1001 and resolves when all are closed. */
  close(): Promise<void>;
  /** Connections currently held (open or still closing). */
  clientCount(): number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const DEFAULT_HIGH_WATER_BYTES = 256 * KIB;
const DEFAULT_MAX_QUEUED_BYTES = 32 * MIB;
const DEFAULT_STALL_MS = 60_000;
const MIN_FRAME_BYTES = 64 * KIB;
const DEFAULT_HEARTBEAT_MS = 30_000;
/** After we send a close frame the peer has this long to answer before its socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** Frames still being handled (a chat waiting for its accept, say); more than this many is a flood. */
const MAX_PENDING_FRAMES = 16;
/** Each subscription is a listener inside the runtime; one connection may not hold unboundedly many. */
const MAX_SUBSCRIPTIONS = 256;

/** What every connection shares: dependencies and limits, resolved once. */
interface Shared {
  runtime: Runtime;
  limits: FrameLimits;
  maxFramesPerSecond: number;
  highWaterBytes: number;
  maxQueuedBytes: number;
  stallMs: number;
  modes: readonly string[];
}

/**
 * Serves the WebSocket protocol (DESIGN §4) on `server`'s `upgrade` event at `path`: authenticates the
 * upgrade, validates every frame at the edge, and talks to the runtime only through `Runtime`. Each
 * connection writes at the pace its client reads (see `Connection`); a client that stops reading is
 * closed instead of holding memory, and nothing shared ever waits for a client. Refused upgrades are
 * logged at most once a minute per address; an owner may hold `limits.connectionsPerOwner` connections.
 */
export function attachWebSocket(server: Server, options: WebSocketOptions): AttachedWebSocket {
  const { runtime, config, log } = options;
  const path = options.path ?? '/ws';
  // A chat text may legally be JSON-escaped to 6 bytes per character (`\uXXXX`), so the frame limit
  // follows `messageChars` up; the text itself is then held to `messageChars` characters.
  const maxFrameBytes = options.maxFrameBytes ?? Math.max(MIN_FRAME_BYTES, config.limits.messageChars * 6 + KIB);
  const shared: Shared = {
    runtime,
    limits: { maxFrameBytes, messageChars: config.limits.messageChars },
    maxFramesPerSecond: options.maxFramesPerSecond ?? config.limits.framesPerSecond,
    highWaterBytes: options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
    maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
    stallMs: options.stallMs ?? DEFAULT_STALL_MS,
    modes: Object.keys(config.modes),
  };
  const authenticate = createAuthenticator(config.auth.tokens);
  const hostAllowed = createHostCheck({ tokens: config.auth.tokens, hosts: [config.server.host] });
  const refusals = new RefusalLog({ log, message: 'websocket upgrade refused', ...(options.now === undefined ? {} : { now: options.now }) });
  /** Open connections per owner; an owner is removed at zero, so the map holds only connected owners. */
  const perOwner = new Map<string, number>();
  const connectionsPerOwner = config.limits.connectionsPerOwner;
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    // Frames over `maxFrameBytes` get a `too_large` reply and the connection stays open; ws itself only
    // closes (1009) beyond this hard cap, which keeps a single frame from exhausting memory.
    maxPayload: Math.max(1024 * KIB, 4 * maxFrameBytes),
    perMessageDeflate: false,
  });
  const connections = new Set<Connection>();
  let nextId = 1;
  let closing: Promise<void> | null = null;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const remote = req.socket.remoteAddress;
    const refuseUpgrade = (refusal: Refusal, text: string, extraHeaders = ''): void => {
      refusals.note(remote, refusal);
      refuse(socket, refusal.status, text, extraHeaders);
    };
    const url = URL.canParse(req.url ?? '/', 'http://localhost') ? new URL(req.url ?? '/', 'http://localhost') : null;
    if (url === null) return refuseUpgrade({ status: 400, reason: 'bad_url' }, 'Bad Request');
    if (url.pathname !== path) return refuseUpgrade({ status: 404, reason: 'not_found' }, 'Not Found');
    if (closing !== null) return refuseUpgrade({ status: 503, reason: 'shutting_down' }, 'Service Unavailable');
    const owner = authenticate(req, url);
    if (owner === null) return refuseUpgrade({ status: 401, reason: 'unauthorized' }, 'Unauthorized', 'WWW-Authenticate: Bearer\r\n');
    // Without tokens any web page the user visits could open ws://127.0.0.1/ws and chat as them
    // (cross-site WebSocket hijacking, DNS rebinding): browsers always send Origin and Host, so refuse a
    // foreign one of either.
    if (!hostAllowed(req.headers.host)) return refuseUpgrade({ status: 403, reason: 'foreign_host' }, 'Forbidden');
    if (config.auth.tokens.length === 0 && !isLoopbackOrigin(req.headers.origin)) {
      return refuseUpgrade({ status: 403, reason: 'foreign_origin' }, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (closing !== null) {
        ws.close(1001, 'server shutting down');
        return;
      }
      const open = perOwner.get(owner) ?? 0;
      if (open >= connectionsPerOwner) {
        refusals.note(remote, { status: 1013, reason: 'too_many_connections' });
        return refuseConnection(ws, `too many connections for this owner (the limit is ${connectionsPerOwner}); close one first`);
      }
      perOwner.set(owner, open + 1);
      const id = nextId++;
      const connection = new Connection(ws, socket, owner, shared, log.child({ conn: id }));
      connections.add(connection);
      ws.on('close', () => {
        connections.delete(connection);
        const left = (perOwner.get(owner) ?? 1) - 1;
        if (left > 0) perOwner.set(owner, left);
        else perOwner.delete(owner);
      });
      connection.log.info({ remote, authenticated: config.auth.tokens.length > 0 }, 'websocket connected');
    });
  };
  server.on('upgrade', onUpgrade);

  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.beat();
  }, heartbeatMs);
  // The heartbeat alone must not keep the process alive.
  heartbeat.unref();
  // The metrics read the connections at each scrape: nothing is counted on the hot path.
  const unwatch = runtime.metrics.watchWebSockets(() => {
    let bufferedBytes = 0;
    for (const connection of connections) bufferedBytes += connection.bufferedBytes;
    return { connections: connections.size, bufferedBytes };
  });

  const shutdown = async (): Promise<void> => {
    clearInterval(heartbeat);
    unwatch();
    refusals.close();
    await Promise.all([...connections].map((connection) => connection.closeAndWait(1001, 'server shutting down')));
    server.off('upgrade', onUpgrade);
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };

  return {
    close: () => (closing ??= shutdown()),
    clientCount: () => connections.size,
  };
}

/** One subscription of a connection to a job's events. */
interface Subscription {
  jobId: string;
  /** The last seq sent: later events with a seq at or below it are dropped, so each goes out once. */
  lastSeq: number;
  unsubscribe: Unsubscribe | null;
  ended: boolean;
}

/**
 * One client. Each frame is handled as it arrives, none waits for another: a chat whose message is still
 * being stored (slow, or failing on a database outage) never holds up a `ping` or a `cancel`.
 *
 * Frames go out in the order they are sent (`accepted`, then the job's events, the terminal one last),
 * at the pace the client reads: while the socket holds less than `highWaterBytes` unsent, a frame is
 * written at once; beyond, frames wait in the connection's own queue and are written as the socket
 * drains. So the replay of a long answer reaches a client that reads normally over one connection, and
 * the socket (with the protocol pings behind it) never holds more than about `highWaterBytes`. A client
 * that stops reading is closed with 1013 once `maxQueuedBytes` wait for it, or when nothing could be
 * written for `stallMs`. `subscribe` frames replay one at a time, each once the queue is under a quarter
 * of `maxQueuedBytes`, so a client asking for several long replays at once gets them one after another.
 */
class Connection {
  private readonly subscriptions = new Map<string, Subscription>();
  private alive = true;
  private tokens: number;
  private refilledAt = performance.now();
  private pending = 0;
  private closeTimer: NodeJS.Timeout | undefined;
  private corked = false;
  /** Frames waiting for the socket to drain, oldest at `queueHead`. */
  private queue: string[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** When the queue last made progress (or became non-empty): a queue stuck past `stallMs` closes. */
  private progressAt = 0;
  /** `subscribe`s waiting for their turn to replay, first come first served. */
  private readonly roomWaiters: Array<() => void> = [];
  /** A `subscribe` is replaying (see `subscribeInTurn`). */
  private replaying = false;
  /** The socket's limit on unsent bytes, at least its own high-water mark, so that 'drain' always follows. */
  private readonly highWaterBytes: number;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded socket under `ws`: corked while a burst of frames is written, and its 'drain' resumes the queue. */
    private readonly socket: Duplex,
    private readonly owner: string,
    private readonly shared: Shared,
    readonly log: Logger,
  ) {
    this.tokens = shared.maxFramesPerSecond;
    // A write that leaves the socket's buffer at or over its own high-water mark makes it emit 'drain'
    // once it is empty again; holding at least that much before queueing guarantees the wake-up.
    this.highWaterBytes = Math.max(shared.highWaterBytes, socket.writableHighWaterMark);
    socket.on('drain', () => this.pump());
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    // Without a listener a socket error (reset by peer) would be an uncaught exception; 'close' follows.
    ws.on('error', (error) => this.log.debug({ err: error }, 'websocket error'));
    ws.on('close', (code) => {
      clearTimeout(this.closeTimer);
      this.releaseAll();
      this.dropQueue();
      // Waiting subscribes go on and find the connection closed.
      for (const resolve of this.roomWaiters.splice(0)) resolve();
      this.log.info({ code }, 'websocket closed');
    });
  }

  /** Bytes owed to the client: unsent in the socket plus frames waiting in this connection's queue. */
  get bufferedBytes(): number {
    return this.queuedBytes + this.ws.bufferedAmount;
  }

  /**
   * One heartbeat tick: close a connection whose queue has not moved for `stallMs`, terminate a peer
   * that did not answer the previous ping, then ping again.
   */
  beat(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.queuedBytes > 0 && performance.now() - this.progressAt > this.shared.stallMs) {
      this.log.warn({ queuedBytes: this.queuedBytes }, 'websocket client stopped reading; closing');
      this.close(1013, 'client too slow; reconnect and subscribe with afterSeq');
      return;
    }
    if (!this.alive) {
      this.log.info('websocket peer missed a heartbeat; terminating');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /**
   * Starts the closing handshake and stops feeding the connection; a peer that never answers is destroyed.
   * Frames still queued go out ahead of the close frame, except when closing for being too slow (1013).
   */
  close(code: number, reason: string): void {
    this.releaseAll();
    if (code === 1013) this.dropQueue();
    else this.flushQueue();
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState !== WebSocket.CLOSING) this.ws.close(code, reason);
    this.closeTimer ??= setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  /** `close`, resolving once the socket is really closed. */
  closeAndWait(code: number, reason: string): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.close(code, reason);
    return closed;
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    // Rate limiting counts every frame, bad ones included, before any work is spent on it.
    if (!this.takeToken()) return this.sendError('rate_limited', 'too many frames; slow down');
    if (isBinary) return this.sendError('bad_request', 'frames must be JSON text');
    const raw = toBuffer(data);
    const parsed = parseClientFrame(raw, this.shared.limits);
    if (!parsed.ok) {
      this.log.debug({ bytes: raw.byteLength, code: parsed.code }, 'websocket frame refused');
      return this.sendError(parsed.code, parsed.message, parsed.clientMsgId);
    }
    const { frame } = parsed;
    this.log.debug({ frame: frame.type, bytes: raw.byteLength }, 'websocket frame');
    if (frame.type === 'ping') return this.send({ type: 'pong' });
    if (frame.type === 'status') return this.send({ type: 'status', ...this.shared.runtime.status() });
    const clientMsgId = frame.type === 'chat' ? frame.clientMsgId : undefined;
    if (this.pending >= MAX_PENDING_FRAMES) return this.sendError('rate_limited', 'too many frames waiting; wait for replies', clientMsgId);
    // The token bucket and MAX_PENDING_FRAMES bound how many are in flight.
    this.pending++;
    this.handle(frame)
      .catch((error: unknown) => {
        // A refusal by the runtime (unknown mode, afterSeq past a job's end, shutdown, …) is the client's to fix.
        if (error instanceof SubmitRejected) {
          this.log.info({ frame: frame.type, code: error.code }, 'frame rejected');
          const refusal = rejectionFrame(error, this.shared.modes);
          this.sendError(refusal.code, refusal.message, clientMsgId);
          return;
        }
        // Store failures were logged by the runtime where they happened; anything else is logged here.
        const info = toErrorInfo(error);
        if (info.code === 'store_unavailable') {
          this.sendError('store_unavailable', `the database is unavailable, so the ${frame.type} frame was not processed; send it again shortly`, clientMsgId);
          return;
        }
        if (info.code !== 'store_rejected') this.log.error({ err: error, frame: frame.type, reason: info.reason }, 'websocket frame failed');
        this.sendError('bad_request', `internal error: the ${frame.type} frame was not processed; try again`, clientMsgId);
      })
      .finally(() => {
        this.pending--;
      });
  }

  private async handle(frame: Exclude<ClientFrame, { type: 'ping' | 'status' }>): Promise<void> {
    const { runtime } = this.shared;
    switch (frame.type) {
      case 'chat':
        return this.chat(frame);
      case 'cancel':
        // A finished job is still known (true): cancelling it has no effect and is no error.
        if (!(await runtime.cancel(frame.jobId, this.owner))) this.sendError('unknown_job', 'no such job');
        else this.log.info({ jobId: frame.jobId }, 'cancel requested');
        return;
      case 'subscribe':
        if (!(await this.subscribeInTurn(frame.jobId, frame.afterSeq ?? 0))) this.sendError('unknown_job', 'no such job');
        return;
    }
  }

  private async chat(frame: ChatFrame): Promise<void> {
    if (this.subscriptions.size >= MAX_SUBSCRIPTIONS) {
      return this.sendError('rate_limited', 'too many jobs followed at once; wait for some to finish', frame.clientMsgId);
    }
    const accepted = await this.shared.runtime.submit({
      text: frame.text,
      source: 'ws',
      owner: this.owner,
      ...(frame.conversationId === undefined ? {} : { conversationId: frame.conversationId }),
      ...(frame.mode === undefined ? {} : { mode: frame.mode }),
      ...(frame.clientMsgId === undefined ? {} : { clientMsgId: frame.clientMsgId }),
    });
    this.log.info({ jobId: accepted.jobId, repeated: accepted.repeated }, 'chat accepted');
    this.send({
      type: 'accepted',
      jobId: accepted.jobId,
      conversationId: accepted.conversationId,
      ...(frame.clientMsgId === undefined ? {} : { clientMsgId: frame.clientMsgId }),
    });
    // Subscribing from seq 0 after `accepted` replays whatever the job emitted meanwhile, so every event
    // follows `accepted`, in order, once.
    if (!(await this.follow(accepted.jobId, 0))) {
      this.log.warn({ jobId: accepted.jobId }, 'accepted job unknown to subscribe');
      this.sendError('unknown_job', 'the job was accepted but cannot be followed');
    }
  }

  /**
   * A `subscribe` frame: `follow`, one replay at a time per connection and only while the queue has
   * room, since the replay of an ended job arrives all at once and several long ones together could
   * exceed `maxQueuedBytes` for a client that reads normally.
   */
  private async subscribeInTurn(jobId: string, afterSeq: number): Promise<boolean> {
    await this.enterReplay();
    try {
      return await this.follow(jobId, afterSeq);
    } finally {
      this.replaying = false;
      this.admitWaiting();
    }
  }

  /**
   * Subscribes to a job from `afterSeq`; false for an unknown job. Replaces an earlier subscription to
   * it. A refusal by the runtime (`SubmitRejected`) is thrown after the subscription is released, so it
   * never counts against MAX_SUBSCRIPTIONS.
   */
  private async follow(jobId: string, afterSeq: number): Promise<boolean> {
    if (this.ws.readyState !== WebSocket.OPEN) return true;
    const previous = this.subscriptions.get(jobId);
    // Two live subscriptions to one job would send each event twice; the newer request wins.
    if (previous !== undefined) this.release(previous);
    if (this.subscriptions.size >= MAX_SUBSCRIPTIONS) {
      this.sendError('rate_limited', 'too many jobs followed at once; wait for some to finish');
      return true;
    }
    const subscription: Subscription = { jobId, lastSeq: afterSeq, unsubscribe: null, ended: false };
    this.subscriptions.set(jobId, subscription);
    let unsubscribe: Unsubscribe | null;
    try {
      unsubscribe = await this.shared.runtime.subscribe(jobId, this.owner, afterSeq, (event) =>
        this.deliver(subscription, event),
      );
    } catch (error) {
      this.release(subscription);
      throw error;
    }
    if (unsubscribe === null) {
      this.release(subscription);
      return false;
    }
    subscription.unsubscribe = unsubscribe;
    // Ended while subscribe was pending: the terminal event came with the replay, or the socket closed.
    if (subscription.ended) this.release(subscription);
    return true;
  }

  private deliver(subscription: Subscription, event: JobEvent): void {
    if (subscription.ended || event.seq <= subscription.lastSeq) return;
    subscription.lastSeq = event.seq;
    // Built field by field so nothing beyond the contract leaves the server.
    this.send({
      type: 'event',
      jobId: subscription.jobId,
      seq: event.seq,
      event: event.event,
      data: event.data,
      at: event.at,
    });
    if (isTerminal(event.event)) this.release(subscription);
  }

  private release(subscription: Subscription): void {
    subscription.ended = true;
    if (this.subscriptions.get(subscription.jobId) === subscription) this.subscriptions.delete(subscription.jobId);
    const { unsubscribe } = subscription;
    subscription.unsubscribe = null;
    // Deferred: we may be inside the runtime's listener loop, which should not change under it.
    if (unsubscribe !== null) queueMicrotask(unsubscribe);
  }

  private releaseAll(): void {
    for (const subscription of [...this.subscriptions.values()]) this.release(subscription);
  }

  /** Writes a frame now, or queues it behind the frames already waiting for the socket to drain. */
  private send(frame: ServerFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const data = JSON.stringify(frame);
    if (this.queuedBytes === 0 && this.ws.bufferedAmount < this.highWaterBytes) {
      this.write(data);
      return;
    }
    if (this.queuedBytes === 0) this.progressAt = performance.now();
    this.queue.push(data);
    this.queuedBytes += Buffer.byteLength(data);
    // Holding more for a client that does not read would cost memory without end.
    if (this.queuedBytes > this.shared.maxQueuedBytes) {
      this.log.warn({ queuedBytes: this.queuedBytes }, 'websocket client too slow; closing');
      this.close(1013, 'client too slow; reconnect and subscribe with afterSeq');
    }
  }

  /** The socket drained: write queued frames, in order, until it holds `highWaterBytes` again. */
  private pump(): void {
    if (this.queuedBytes === 0 || this.ws.readyState !== WebSocket.OPEN) return;
    while (this.queueHead < this.queue.length && this.ws.bufferedAmount < this.highWaterBytes) this.writeQueued();
    this.progressAt = performance.now();
    this.compactQueue();
    this.admitWaiting();
  }

  /** Writes every queued frame regardless of the socket's fill: the connection is closing normally. */
  private flushQueue(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return this.dropQueue();
    while (this.queueHead < this.queue.length) this.writeQueued();
    this.dropQueue();
  }

  private writeQueued(): void {
    const data = this.queue[this.queueHead];
    if (data === undefined) return;
    // The slot is cleared so a long queue does not keep written frames alive until it is compacted.
    this.queue[this.queueHead++] = '';
    this.queuedBytes -= Buffer.byteLength(data);
    this.write(data);
  }

  private compactQueue(): void {
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private dropQueue(): void {
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }

  private write(data: string): void {
    // Frames sent in one burst (`accepted` and the events it replays, a chunk and the next) leave in
    // one write: each write to a socket is a system call that costs more than the frame itself.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.ws.send(data);
  }

  /** Resolves when this `subscribe` may replay: no other replay running or waiting, and room in the queue. */
  private enterReplay(): Promise<void> {
    if (!this.replaying && this.roomWaiters.length === 0 && this.hasRoom()) {
      this.replaying = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Lets the first waiting `subscribe` replay when none is running and the queue has room. */
  private admitWaiting(): void {
    if (this.replaying || this.roomWaiters.length === 0 || !this.hasRoom()) return;
    this.replaying = true;
    this.roomWaiters.shift()?.();
  }

  /** Room for a replay: at most a quarter of `maxQueuedBytes` waiting (or the connection is closing). */
  private hasRoom(): boolean {
    return this.queuedBytes <= this.shared.maxQueuedBytes / 4 || this.ws.readyState !== WebSocket.OPEN;
  }

  /** An error frame; for a chat it names the chat's `clientMsgId`, since replies to chats may come in any order. */
  private sendError(code: WsErrorCode, message: string, clientMsgId?: string): void {
    this.log.debug({ code }, 'websocket error frame');
    this.send({ type: 'error', code, message, ...(clientMsgId === undefined ? {} : { clientMsgId }) });
  }

  /** A token bucket: `maxFramesPerSecond` tokens per second, bursts up to the same number. */
  private takeToken(): boolean {
    const rate = this.shared.maxFramesPerSecond;
    const now = performance.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Accepts the WebSocket only to say why it cannot stay: `rate_limited`, then close 1013. */
function refuseConnection(ws: WebSocket, message: string): void {
  ws.on('error', () => undefined);
  const frame: ErrorFrame = { type: 'error', code: 'rate_limited', message };
  ws.send(JSON.stringify(frame));
  ws.close(1013, 'too many connections');
  const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}

/** Maps a runtime refusal to the closed set of WebSocket error codes. */
function rejectionFrame(error: SubmitRejected, modes: readonly string[]): Pick<ErrorFrame, 'code' | 'message'> {
  switch (error.code) {
    case 'bad_request':
    case 'too_large':
    case 'rate_limited':
      return { code: error.code, message: error.message };
    case 'unknown_conversation':
      return { code: 'unknown_conversation', message: 'no such conversation' };
    case 'unknown_mode':
      return { code: 'bad_request', message: `${error.message}; use "auto" or one of: ${modes.join(', ') || '(none)'}` };
    case 'shutting_down':
      return { code: 'bad_request', message: 'the server is shutting down; reconnect and send again shortly' };
  }
}

/** True when there is no Origin (not a browser) or it names this machine. */
function isLoopbackOrigin(origin: string | undefined): boolean {
  if (origin === undefined) return true;
  let hostname: string;
  try {
    hostname = new URL(origin).hostname;
  } catch {
    return false;
  }
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Answers a refused upgrade with a bare HTTP status and closes the socket. */
function refuse(socket: Duplex, status: number, text: string, extraHeaders = ''): void {
  socket.on('error', () => socket.destroy());
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n${extraHeaders}\r\n`);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
