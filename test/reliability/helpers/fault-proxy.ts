/**
 * An HTTP proxy on 127.0.0.1 in front of a real server (the tests' Radicale) that passes every request
 * through, or, while armed, answers each request with one of the fault matrix's faults — so a tool meets
 * a real server failing in the ways a model server can, over real sockets.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does to each request while armed (same names as the fake model server's faults). */
export type ProxyFault =
  | 'refuse'
  | 'http_500'
  | 'hang_before_headers'
  | 'stall_mid_stream'
  | 'drop_mid_stream'
  | 'malformed'
  | 'slow_drip'
  | 'restart';

/** The pace of `slow_drip`'s bytes. */
const DRIP_MS = 50;

export class FaultProxy {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  /** Requests that reached the proxy, and how many met the armed fault. */
  requests = 0;
  faulted = 0;
  private fault: ProxyFault | null = null;
  private readonly sockets = new Set<Socket>();
  private listening = true;
  /** Ends every hung, stalled and dripping response when the proxy closes or disarms. */
  private pending = new AbortController();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: URL,
  ) {
    this.url = `http://127.0.0.1:${port}/`;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
  }

  static async start(target: string): Promise<FaultProxy> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new FaultProxy(server, (server.address() as AddressInfo).port, new URL(target));
  }

  /** Every later request meets `fault` (`refuse` closes the port now) until {@link FaultProxy.disarm}. */
  async arm(fault: ProxyFault): Promise<void> {
    this.fault = fault;
    if (fault === 'refuse') await this.goDown();
  }

  /** Passes requests through again, listening on the same port; ends the responses a fault held open. */
  async disarm(): Promise<void> {
    this.fault = null;
    this.pending.abort();
    this.pending = new AbortController();
    await this.goUp();
  }

  async close(): Promise<void> {
    this.fault = null;
    this.pending.abort();
    await this.goDown();
  }

  private async goDown(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = once(this.server, 'close');
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async goUp(): Promise<void> {
    if (this.listening) return;
    this.listening = true;
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests += 1;
    const fault = this.fault;
    if (fault !== null) this.faulted += 1;
    const held = this.pending.signal;
    if (fault === 'refuse' || fault === 'hang_before_headers') {
      // (`refuse` only reaches here on a connection opened before the port closed.)
      req.resume();
      held.addEventListener('abort', () => res.destroy(), { once: true });
      return;
    }
    if (fault === 'http_500') {
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain' }).end('fault proxy: server error');
      return;
    }
    if (fault === 'malformed') {
      req.resume();
      // A multistatus that is not XML at all, under the right status and type.
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' }).end('<?xml version="1.0"?><multistatus xmlns="DAV:"><response><href>/x</href><propstat oops');
      return;
    }
    if (fault === 'slow_drip') {
      req.resume();
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' });
      // Bytes keep coming, the body never completes.
      const timer = setInterval(() => res.write(' '), DRIP_MS);
      const stop = (): void => {
        clearInterval(timer);
        res.destroy();
      };
      held.addEventListener('abort', stop, { once: true });
      res.once('close', () => clearInterval(timer));
      return;
    }
    this.forward(req, res, fault, held);
  }

  /** Passes the request to the target; the mid-body faults cut its answer after half of it. */
  private forward(req: IncomingMessage, res: ServerResponse, fault: ProxyFault | null, held: AbortSignal): void {
    const upstream = request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: { ...req.headers, host: this.target.host } },
      (answer) => {
        if (fault === null) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          const body = Buffer.concat(chunks);
          const headers = { ...answer.headers };
          delete headers['content-length'];
          delete headers['transfer-encoding'];
          res.writeHead(answer.statusCode ?? 502, headers);
          res.write(body.subarray(0, Math.max(1, Math.floor(body.length / 2))));
          if (fault === 'stall_mid_stream') held.addEventListener('abort', () => res.destroy(), { once: true });
          // Let the client read the first half before the connection goes.
          else if (fault === 'drop_mid_stream') setTimeout(() => res.socket?.destroy(), 30);
          else if (fault === 'restart') setTimeout(() => void this.goDown(), 30);
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }
}
