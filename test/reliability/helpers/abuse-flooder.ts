/**
 * The abusive owner of test/reliability/abuse.test.ts, run in its own process (`node --import tsx`) so
 * that its JavaScript — parsing hundreds of refusals a second and answers of `limits.answerChars`
 * characters — runs on its own event loop, not on the one that times the other owner's chats.
 *
 * Driven by lines on stdin, answering with one JSON line on stdout each:
 * - `start`: opens `connections` WebSocket connections with its token (all must be taken), then floods
 *   until `stop`: tries one connection more every `extraConnectionEveryMs` (each must be refused with
 *   `rate_limited` and close 1013); keeps `pending + 1` chats unanswered on `chatConnections` of them, so
 *   that one is always refused with `rate_limited` (the pending-jobs limit) while every other runs a
 *   job whose answer is exactly `answerChars` long (`done`) or longer (`answer_too_long`); and sends
 *   `ping` frames at `floodPerSecond` on each of the others (beyond `framesPerSecond`: `rate_limited`,
 *   the connection stays open). Answers `{"started": …}` once the connections are open.
 * - `stop`: stops sending, waits for every accepted job's terminal event, closes its connections and
 *   answers `{"stopped": summary}` — counts, and every departure from the documented refusals.
 * - `exit`: ends the process.
 *
 * Settings come as JSON in FLOOD_SETTINGS (see {@link FloodSettings}).
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

export interface FloodSettings {
  wsUrl: string;
  token: string;
  /** `limits.connectionsPerOwner`: how many connections are opened (all must be taken). */
  connections: number;
  /** Of those, how many send chats; the others flood frames. */
  chatConnections: number;
  /** `limits.pendingJobsPerOwner`. */
  pending: number;
  /** `limits.framesPerSecond`: chat connections stay below it (client side), flood connections far above. */
  framesPerSecond: number;
  /** Frames a second sent on each flood connection. */
  floodPerSecond: number;
  /** `limits.answerChars`. */
  answerChars: number;
  /** A connection beyond the limit is tried this often (one at a time). */
  extraConnectionEveryMs: number;
}

/** What one `start` … `stop` phase did and saw. */
export interface FloodSummary {
  connectionsOpened: number;
  /** Connections beyond the limit refused as documented: `rate_limited`, then close 1013. */
  connectionsRefused: number;
  chatsAccepted: number;
  /** Chats refused with `rate_limited` for the pending-jobs limit. */
  chatsRefused: number;
  /** A's jobs that ended `done` with an answer of exactly `answerChars` characters. */
  jobsDone: number;
  /** A's jobs that ended `error` `answer_too_long`. */
  jobsTooLong: number;
  /** Characters of answers received. */
  answerChars: number;
  framesFlooded: number;
  /** Flooded frames refused with `rate_limited` (too many frames). */
  framesRefused: number;
  pongs: number;
  /** Milliseconds from `start` to `stop`. */
  floodMs: number;
  /** CPU this process spent in the phase (user + system). */
  cpuMs: number;
  /** Anything not as documented (at most 20 kept, `violationCount` counts them all). */
  violations: string[];
  violationCount: number;
}

type Frame = { type: string; [key: string]: unknown };

const settings = JSON.parse(process.env['FLOOD_SETTINGS'] ?? '{}') as FloodSettings;
const TERMINAL = new Set(['done', 'error', 'cancelled']);
/** How often the chat pump and the flood timers run. */
const TICK_MS = 10;

function emptySummary(): FloodSummary {
  return {
    connectionsOpened: 0,
    connectionsRefused: 0,
    chatsAccepted: 0,
    chatsRefused: 0,
    jobsDone: 0,
    jobsTooLong: 0,
    answerChars: 0,
    framesFlooded: 0,
    framesRefused: 0,
    pongs: 0,
    floodMs: 0,
    cpuMs: 0,
    violations: [],
    violationCount: 0,
  };
}

let summary = emptySummary();
function violation(text: string): void {
  summary.violationCount += 1;
  if (summary.violations.length < 20) summary.violations.push(text);
}

/** Opens a connection; `onFrame` is attached before it opens (a refusal arrives with the upgrade's answer). */
function connect(onFrame?: (frame: Frame) => void): Promise<WebSocket> {
  const socket = new WebSocket(settings.wsUrl, { headers: { authorization: `Bearer ${settings.token}` } });
  if (onFrame) socket.on('message', (raw) => onFrame(JSON.parse(String(raw)) as Frame));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
    socket.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
  });
}

/** A connection beyond the limit: it must hear `rate_limited` and then be closed with 1013. */
async function tryExtraConnection(): Promise<void> {
  const frames: Frame[] = [];
  let socket: WebSocket;
  try {
    socket = await connect((frame) => frames.push(frame));
  } catch (error) {
    violation(`extra connection failed instead of being refused: ${String(error)}`);
    return;
  }
  const code = await new Promise<number>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve(-2);
    const timer = setTimeout(() => {
      socket.terminate();
      resolve(-1);
    }, 5_000);
    socket.once('close', (closeCode) => {
      clearTimeout(timer);
      resolve(closeCode);
    });
  });
  if (code === 1013 && frames.length === 1 && frames[0]?.type === 'error' && frames[0]['code'] === 'rate_limited') summary.connectionsRefused += 1;
  else violation(`extra connection: close ${code} after ${JSON.stringify(frames).slice(0, 200)}`);
}

/** One of A's chat connections: its chats, the pending-limit refusals, the huge answers. */
class ChatConnection {
  /** Chats sent and not yet refused or ended, by clientMsgId. */
  readonly outstanding = new Map<string, { kind: 'exact' | 'over'; jobId?: string; chars: number }>();
  private readonly byJob = new Map<string, string>();
  private tokens: number;
  private refilledAt = performance.now();
  closed = false;

  constructor(readonly socket: WebSocket, private readonly onChange: () => void) {
    // Half the gateway's rate, so no chat of ours is refused for the frame rate (that refusal has no clientMsgId).
    this.tokens = settings.framesPerSecond / 2;
    socket.on('message', (raw) => this.receive(JSON.parse(String(raw)) as Frame));
    socket.on('close', (code) => {
      this.closed = true;
      if (!stopping) violation(`chat connection closed (${code}) during the flood`);
      this.onChange();
    });
  }

  /** Sends a chat if the client-side bucket allows; false when it does not. */
  trySend(sequence: number): boolean {
    const rate = settings.framesPerSecond / 2;
    const now = performance.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1 || this.closed) return false;
    this.tokens -= 1;
    const kind = sequence % 2 === 0 ? 'exact' : 'over';
    const clientMsgId = `flood-${kind}-${sequence}`;
    this.outstanding.set(clientMsgId, { kind, chars: 0 });
    this.socket.send(JSON.stringify({ type: 'chat', text: `flood ${kind} ${sequence}`, clientMsgId }));
    return true;
  }

  private receive(frame: Frame): void {
    if (frame.type === 'accepted') {
      const clientMsgId = String(frame['clientMsgId']);
      const chat = this.outstanding.get(clientMsgId);
      if (chat === undefined) return violation(`accepted for an unknown chat ${clientMsgId}`);
      chat.jobId = String(frame['jobId']);
      this.byJob.set(chat.jobId, clientMsgId);
      summary.chatsAccepted += 1;
      return;
    }
    if (frame.type === 'error') {
      const clientMsgId = typeof frame['clientMsgId'] === 'string' ? frame['clientMsgId'] : undefined;
      if (clientMsgId !== undefined && frame['code'] === 'rate_limited' && /already waiting for answers/.test(String(frame['message']))) {
        this.outstanding.delete(clientMsgId);
        summary.chatsRefused += 1;
        this.onChange();
      } else violation(`chat connection: ${JSON.stringify(frame).slice(0, 200)}`);
      return;
    }
    if (frame.type !== 'event') return violation(`chat connection: unexpected ${JSON.stringify(frame).slice(0, 200)}`);
    const clientMsgId = this.byJob.get(String(frame['jobId']));
    const chat = clientMsgId === undefined ? undefined : this.outstanding.get(clientMsgId);
    if (clientMsgId === undefined || chat === undefined) return violation(`event of an unknown job ${String(frame['jobId'])}`);
    const event = String(frame['event']);
    const data = (frame['data'] ?? {}) as Record<string, unknown>;
    if (event === 'result') {
      chat.chars += String(data['content']).length;
      summary.answerChars += String(data['content']).length;
    }
    if (!TERMINAL.has(event)) return;
    if (chat.kind === 'exact' && event === 'done' && chat.chars === settings.answerChars) summary.jobsDone += 1;
    else if (chat.kind === 'over' && event === 'error' && data['reason'] === 'answer_too_long') summary.jobsTooLong += 1;
    else violation(`${chat.kind} job ${chat.jobId} ended ${event} ${JSON.stringify(data)} after ${chat.chars} characters`);
    this.outstanding.delete(clientMsgId);
    this.byJob.delete(String(frame['jobId']));
    this.onChange();
  }
}

/** One of A's flood connections: `ping` frames far above `framesPerSecond`. */
class FloodConnection {
  private owed = 0;
  constructor(readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      const frame = JSON.parse(String(raw)) as Frame;
      if (frame.type === 'pong') summary.pongs += 1;
      else if (frame.type === 'error' && frame['code'] === 'rate_limited' && frame['message'] === 'too many frames; slow down') summary.framesRefused += 1;
      else violation(`flood connection: ${JSON.stringify(frame).slice(0, 200)}`);
    });
    socket.on('close', (code) => {
      if (!stopping) violation(`flood connection closed (${code}) during the flood`);
    });
  }

  tick(elapsedMs: number): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    this.owed += (elapsedMs / 1000) * settings.floodPerSecond;
    for (; this.owed >= 1; this.owed -= 1) {
      this.socket.send('{"type":"ping"}');
      summary.framesFlooded += 1;
    }
  }
}

let stopping = false;
let chats: ChatConnection[] = [];
let floods: FloodConnection[] = [];
let timers: NodeJS.Timeout[] = [];
let sequence = 0;
let startedAt = 0;
let cpuAtStart = process.cpuUsage();

/** Keeps `pending + 1` chats unanswered across the chat connections: one of them is always over the limit. */
function pump(): void {
  if (stopping) return;
  const outstanding = (): number => chats.reduce((sum, chat) => sum + chat.outstanding.size, 0);
  for (let tries = 0; outstanding() < settings.pending + 1 && tries < chats.length; ) {
    const chat = chats[sequence % chats.length]!;
    if (chat.trySend(sequence)) {
      sequence += 1;
      tries = 0;
    } else {
      sequence += 1;
      tries += 1;
    }
  }
}

async function start(): Promise<unknown> {
  summary = emptySummary();
  stopping = false;
  startedAt = performance.now();
  cpuAtStart = process.cpuUsage();
  const sockets = await Promise.all(Array.from({ length: settings.connections }, () => connect()));
  summary.connectionsOpened = sockets.length;
  chats = sockets.slice(0, settings.chatConnections).map((socket) => new ChatConnection(socket, pump));
  floods = sockets.slice(settings.chatConnections).map((socket) => new FloodConnection(socket));
  // One beyond the limit at once, then one at a time for the rest of the flood.
  await tryExtraConnection();
  let extraRunning = false;
  timers.push(
    setInterval(() => {
      if (extraRunning || stopping) return;
      extraRunning = true;
      void tryExtraConnection().finally(() => (extraRunning = false));
    }, settings.extraConnectionEveryMs),
  );
  let last = performance.now();
  timers.push(
    setInterval(() => {
      const now = performance.now();
      for (const flood of floods) flood.tick(now - last);
      last = now;
      pump();
    }, TICK_MS),
  );
  pump();
  return { started: { connections: sockets.length } };
}

async function stop(): Promise<unknown> {
  stopping = true;
  for (const timer of timers) clearInterval(timer);
  timers = [];
  summary.floodMs = Math.round(performance.now() - startedAt);
  // Every accepted job runs to its end (so the next phase starts on an idle gateway); chats still
  // unanswered get their reply first.
  const deadline = Date.now() + 30_000;
  while (chats.some((chat) => chat.outstanding.size > 0 && !chat.closed) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const chat of chats) for (const [id, left] of chat.outstanding) violation(`chat ${id} (job ${left.jobId}) not ended at stop`);
  const sockets = [...chats.map((chat) => chat.socket), ...floods.map((flood) => flood.socket)];
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.close();
        }),
    ),
  );
  chats = [];
  floods = [];
  const cpu = process.cpuUsage(cpuAtStart);
  summary.cpuMs = Math.round((cpu.user + cpu.system) / 1000);
  return { stopped: summary };
}

const lines = createInterface({ input: process.stdin });
let work = Promise.resolve();
lines.on('line', (line) => {
  work = work.then(async () => {
    try {
      if (line === 'start') process.stdout.write(`${JSON.stringify(await start())}\n`);
      else if (line === 'stop') process.stdout.write(`${JSON.stringify(await stop())}\n`);
      else if (line === 'exit') process.exit(0);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ failed: String(error) })}\n`);
    }
  });
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
