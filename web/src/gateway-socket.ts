import { parseServerFrame, type ClientFrame, type ServerFrame } from './protocol.js';

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'needs_token';

export interface GatewaySocketOptions {
  /** `ws://host/ws` of this page's own origin. */
  url: string;
  /** The gateway's `/status`: its 401 tells a refused socket from a gateway that is away. */
  probeUrl: string;
  storage: Storage;
  onOpen(): void;
  onFrame(frame: ServerFrame): void;
  onState(state: SocketState): void;
  /** The gateway wants a token; `refused` when the one sent was not accepted. */
  onTokenNeeded(refused: boolean): void;
}

const TOKEN_KEY = 'switchboard.token';
/** Waits between reconnects, growing while the gateway stays away. */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

/**
 * The page's one WebSocket to the gateway: reconnects after a drop (with backoff), carries the token as
 * `?token=` (browsers cannot set headers on a WebSocket), and asks for a token when the gateway refuses
 * the socket. The token is kept in localStorage.
 */
export class GatewaySocket {
  private socket: WebSocket | null = null;
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private token: string | null;

  constructor(private readonly options: GatewaySocketOptions) {
    this.token = options.storage.getItem(TOKEN_KEY);
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.options.onState('connecting');
    this.connect();
  }

  /** Sends a frame; false when there is no open socket (the caller sends it again after `onOpen`). */
  send(frame: ClientFrame): boolean {
    if (!this.isOpen) return false;
    this.socket!.send(JSON.stringify(frame));
    return true;
  }

  /** Keeps a token the user gave and connects with it. */
  useToken(token: string): void {
    this.token = token;
    this.options.storage.setItem(TOKEN_KEY, token);
    this.attempts = 0;
    this.options.onState('connecting');
    this.connect();
  }

  private connect(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const url = this.token === null ? this.options.url : `${this.options.url}?token=${encodeURIComponent(this.token)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempts = 0;
      this.options.onState('open');
      this.options.onOpen();
    };
    socket.onmessage = (message) => {
      const frame = typeof message.data === 'string' ? parseServerFrame(message.data) : null;
      if (frame !== null) this.options.onFrame(frame);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (opened) this.reconnectLater();
      else void this.afterFailure();
    };
  }

  /**
   * The socket closed before it opened: the gateway is away (try again later) or refused it. A browser
   * never sees the status of a refused upgrade, so the gateway's `/status` is asked with the same token:
   * 401 means the token is missing or wrong, and the user is asked for one.
   */
  private async afterFailure(): Promise<void> {
    const token = this.token;
    // A header carries printable ASCII only: any other token cannot be right.
    const status =
      token !== null && !/^[\x21-\x7e]+$/.test(token)
        ? 401
        : await fetch(this.options.probeUrl, { cache: 'no-store', headers: token === null ? {} : { authorization: `Bearer ${token}` } }).then(
            (response) => response.status,
            () => null,
          );
    if (this.socket !== null || this.token !== token) return;
    if (status !== 401) return this.reconnectLater();
    this.options.onState('needs_token');
    this.options.onTokenNeeded(token !== null);
  }

  private reconnectLater(): void {
    this.options.onState('reconnecting');
    const delay = BACKOFF_MS[Math.min(this.attempts, BACKOFF_MS.length - 1)]!;
    this.attempts += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
