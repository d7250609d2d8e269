/**
 * A fake Synology Chat incoming webhook (or bot API): a real HTTP server on 127.0.0.1, port 0, that
 * records every post (`payload={"text":…}`) with the time it arrived and answers `{"success":true}` —
 * or holds a post unanswered while `hold` says so, to catch a gateway with a part in flight.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';

export interface NasPost {
  /** `Date.now()` on arrival. */
  at: number;
  payload: { text: string; user_ids?: unknown[] };
  /** Answered 200 (false while held, and for ever when the gateway went away meanwhile). */
  answered: boolean;
  held: boolean;
}

export class FakeSynologyNas {
  readonly posts: NasPost[] = [];
  /** Emits `post` with each {@link NasPost} as it arrives. */
  readonly events = new EventEmitter();
  /** When it returns true for a post, the post is recorded and never answered. */
  hold: ((post: NasPost) => boolean) | null = null;

  private constructor(
    private readonly server: Server,
    /** The incoming webhook URL; its `token` is a secret the gateway must never log. */
    readonly url: string,
  ) {}

  /** The texts of the posts that were answered 200, in arrival order. */
  get delivered(): string[] {
    return this.posts.filter((post) => post.answered).map((post) => post.payload.text);
  }

  static async start(token = 'nas-incoming-secret'): Promise<FakeSynologyNas> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const nas = new FakeSynologyNas(server, `http://127.0.0.1:${port}/webapi/entry.cgi?api=SYNO.Chat.External&method=incoming&version=2&token=${token}`);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const post: NasPost = { at: Date.now(), payload: JSON.parse(form.get('payload') ?? 'null') as NasPost['payload'], answered: false, held: false };
        post.held = nas.hold?.(post) ?? false;
        nas.posts.push(post);
        if (!post.held) {
          post.answered = true;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"success":true}');
        }
        nas.events.emit('post', post);
      });
    });
    return nas;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
