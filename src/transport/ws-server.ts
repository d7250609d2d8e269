import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Config } from '../config/config-schema.js';
import { toErrorInfo } from '../errors.js';
import { isTerminal, type JobEvent } from '../jobs/job-event.js';
import { SubmitRejected, type Runtime, type Unsubscribe } from '../runtime/runtime.js';
import { createAuthenticator } from './authenticator.js';
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
  /** Unsent bytes a connection may hold before it is closed with 1013. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Frames per second per connection (a token bucket with this burst). Default 20. */
  maxFramesPerSecond?: number;
  /** Bytes of one client frame. Default: 64 KiB, or more when `limits.messageChars` needs it. */
  maxFrameBytes?: number;
  /** Protocol-level ping interval; a peer that missed the previous ping is terminated. Default 30 s. */
  heartbeatMs?: number;
}

/** The attached WebSocket endpoint. */
export interface AttachedWebSocket {
  /** Stops accepting upgrades, closes every connection with 1001 and resolves when all are closed. */
  close(): Promise<void>;
  /** Connections currently held (open or still closing). */
  clientCount(): number;
}

const KIB = 1024;
const DEFAULT_MAX_BUFFERED_BYTES = 1024 * KIB;
const DEFAULT_MAX_FRAMES_PER_SECOND = 20;
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
  maxBufferedBytes: number;
  maxFramesPerSecond: number;
  modes: readonly string[];
}

/**
 * Serves the WebSocket protocol (DESIGN §4) on `server`'s `upgrade` event at `path`: authenticates the
 * upgrade, validates every frame at the edge, and talks to the runtime only through `Runtime`. A slow
 * client is closed instead of slowing the shared event path; nothing ever awaits a client's drain.
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
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
    maxFramesPerSecond: options.maxFramesPerSecond ?? DEFAULT_MAX_FRAMES_PER_SECOND,
    modes: Object.keys(config.modes),
  };
  const authenticate = createAuthenticator(config.auth.tokens);
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
    const url = URL.canParse(req.url ?? '/', 'http://localhost') ? new URL(req.url ?? '/', 'http://localhost') : null;
    if (url === null) return refuse(socket, 400, 'Bad Request');
    if (url.pathname !== path) return refuse(socket, 404, 'Not Found');
    if (closing !== null) return refuse(socket, 503, 'Service Unavailable');
    const owner = authenticate(req, url);
    if (owner === null) {
      log.info({ status: 401 }, 'websocket upgrade refused');
      return refuse(socket, 401, 'Unauthorized', 'WWW-Authenticate: Bearer\r\n');
    }
    // Without tokens any web page the user visits could open ws://127.0.0.1/ws and chat as them
    // (cross-site WebSocket hijacking, DNS rebinding): browsers always send Origin, so refuse foreign ones.
    if (config.auth.tokens.length === 0 && !isLoopbackOrigin(req.headers.origin)) {
      log.info({ status: 403 }, 'websocket upgrade refused: foreign origin without auth');
      return refuse(socket, 403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (closing !== null) {
        ws.close(1001, 'server shutting down');
        return;
      }
      const id = nextId++;
      const connection = new Connection(ws, socket, owner, shared, log.child({ conn: id }));
      connections.add(connection);
      ws.on('close', () => connections.delete(connection));
      connection.log.info({ remote: req.socket.remoteAddress, authenticated: config.auth.tokens.length > 0 }, 'websocket connected');
    });
  };
  server.on('upgrade', onUpgrade);

  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.beat();
  }, heartbeatMs);
  // The heartbeat alone must not keep the process alive.
  heartbeat.unref();

  const shutdown = async (): Promise<void> => {
    clearInterval(heartbeat);
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
 * being stored (slow, or failing on a database outage) never holds up a `ping` or a `cancel`. Replies
 * that belong together stay in order (`accepted`, then the job's events). Its events go out without
 * ever waiting for the client.
 */
class Connection {
  private readonly subscriptions = new Map<string, Subscription>();
  private alive = true;
  private tokens: number;
  private refilledAt = performance.now();
  private pending = 0;
  private closeTimer: NodeJS.Timeout | undefined;
  private corked = false;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded socket under `ws`: corked while a burst of frames is written (see `send`). */
    private readonly socket: Duplex,
    private readonly owner: string,
    private readonly shared: Shared,
    readonly log: Logger,
  ) {
    this.tokens = shared.maxFramesPerSecond;
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    // Without a listener a socket error (reset by peer) would be an uncaught exception; 'close' follows.
    ws.on('error', (error) => this.log.debug({ err: error }, 'websocket error'));
    ws.on('close', (code) => {
      clearTimeout(this.closeTimer);
      this.releaseAll();
      this.log.info({ code }, 'websocket closed');
    });
  }

  /** One heartbeat tick: terminate a peer that did not answer the previous ping, then ping again. */
  beat(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.alive) {
      this.log.info('websocket peer missed a heartbeat; terminating');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** Starts the closing handshake and stops feeding the connection; a peer that never answers is destroyed. */
  close(code: number, reason: string): void {
    this.releaseAll();
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
        if (!(await this.follow(frame.jobId, frame.afterSeq ?? 0))) this.sendError('unknown_job', 'no such job');
        return;
    }
  }

  private async chat(frame: ChatFrame): Promise<void> {
    if (this.subscriptions.size >= MAX_SUBSCRIPTIONS) {
      return this.sendError('rate_limited', 'too many jobs followed at once; wait for some to finish', frame.clientMsgId);
    }
    let accepted;
    try {
      accepted = await this.shared.runtime.submit({
        text: frame.text,
        source: 'ws',
        owner: this.owner,
        ...(frame.conversationId === undefined ? {} : { conversationId: frame.conversationId }),
        ...(frame.mode === undefined ? {} : { mode: frame.mode }),
        ...(frame.clientMsgId === undefined ? {} : { clientMsgId: frame.clientMsgId }),
      });
    } catch (error) {
      if (!(error instanceof SubmitRejected)) throw error;
      this.log.info({ frame: 'chat', code: error.code }, 'chat rejected');
      const refusal = rejectionFrame(error, this.shared.modes);
      return this.sendError(refusal.code, refusal.message, frame.clientMsgId);
    }
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

  /** Subscribes to a job from `afterSeq`; false for an unknown job. Replaces an earlier subscription to it. */
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

  private send(frame: ServerFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
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
    this.ws.send(JSON.stringify(frame));
    // ws queues what the socket cannot take; past the limit this client is not keeping up, and holding
    // more for it would cost memory (and waiting for it would cost everyone else's latency).
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.shared.maxBufferedBytes) {
      this.log.warn({ bufferedBytes: buffered }, 'websocket client too slow; closing');
      this.close(1013, 'client too slow; reconnect and subscribe with afterSeq');
    }
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

/** Maps a runtime refusal to the closed set of WebSocket error codes. */
function rejectionFrame(error: SubmitRejected, modes: readonly string[]): Pick<ErrorFrame, 'code' | 'message'> {
  switch (error.code) {
    case 'bad_request':
    case 'too_large':
      return { code: error.code, message: error.message };
    case 'unknown_conversation':
      return { code: 'unknown_conversation', message: 'no such conversation' };
    case 'unknown_mode':
      return { code: 'bad_request', message: `unknown mode; use "auto" or one of: ${modes.join(', ') || '(none)'}` };
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
