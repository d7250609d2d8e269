import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

/** One chat sent over a `ChatSocket`: when it was accepted, and its terminal event's name. */
export interface SentChat {
  accepted: Promise<void>;
  ended: Promise<string>;
}

/**
 * A WebSocket client of the gateway that sends chats and follows them to their terminal event (`done`,
 * `error` or `cancelled`), many at once. The server takes at most 16 frames at a time from a connection
 * (more are refused until it has answered) and a connection follows at most 256 jobs, so callers spread
 * more over several sockets.
 */
export class ChatSocket {
  private readonly accepting = new Map<string, { accepted: () => void; refused: (error: Error) => void; ended: (event: string) => void }>();
  private readonly running = new Map<string, (event: string) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      const frame = JSON.parse(String(raw)) as { type: string; jobId?: string; clientMsgId?: string; event?: string };
      const chat = frame.clientMsgId === undefined ? undefined : this.accepting.get(frame.clientMsgId);
      if (frame.type === 'accepted' && chat) {
        // Registered within this handler: the job's terminal event may come in the same read.
        this.accepting.delete(frame.clientMsgId!);
        this.running.set(String(frame.jobId), chat.ended);
        chat.accepted();
      } else if (frame.type === 'event' && ['done', 'error', 'cancelled'].includes(String(frame.event))) {
        this.running.get(String(frame.jobId))?.(String(frame.event));
        this.running.delete(String(frame.jobId));
      } else if (frame.type === 'error') {
        const error = new Error(`chat refused: ${String(raw)}`);
        if (chat) chat.refused(error);
        else throw error;
      }
    });
  }

  static async connect(url: string): Promise<ChatSocket> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return new ChatSocket(socket);
  }

  /** Sends a `chat` frame (a new conversation each time). */
  chat(text: string, mode?: string): SentChat {
    const clientMsgId = randomUUID();
    let ended!: (event: string) => void;
    const end = new Promise<string>((resolve) => (ended = resolve));
    const accepted = new Promise<void>((resolve, reject) => this.accepting.set(clientMsgId, { accepted: resolve, refused: reject, ended }));
    this.socket.send(JSON.stringify({ type: 'chat', text, clientMsgId, ...(mode === undefined ? {} : { mode }) }));
    return { accepted, ended: end };
  }

  /**
   * Sends `texts` in order, as fast as the server takes them: never more than 16 not yet accepted.
   * Resolves once all are accepted, with each chat in the same order.
   */
  async chats(texts: string[], mode?: string): Promise<SentChat[]> {
    const sent: SentChat[] = [];
    for (const [i, text] of texts.entries()) {
      if (i >= 16) await sent[i - 16]!.accepted;
      sent.push(this.chat(text, mode));
    }
    await Promise.all(sent.map((chat) => chat.accepted));
    return sent;
  }

  close(): void {
    this.socket.close();
  }
}
