/**
 * An incremental Server-Sent Events parser (WHATWG "event stream interpretation") for the streaming
 * hot path: it is fed raw chunks as they arrive from the socket and calls back once per complete event.
 */

/** One dispatched event. `event` is present only when the stream named it (`event: …`). */
export interface SseEvent {
  event?: string;
  data: string;
}

export interface SseParserOptions {
  /**
   * Upper bound, in UTF-16 code units, for one unfinished line plus the data buffered for one event.
   * A server that never sends a line break must not make us buffer without end. Default 4 Mi.
   */
  maxEventChars?: number;
}

const LF = 10;
const COLON = 58;
const SPACE = 32;
const BOM = 0xfeff;
const DEFAULT_MAX_EVENT_CHARS = 4 * 1024 * 1024;

/**
 * Feed it with `push(chunk)` and finish with `end()`. Chunks may be bytes (decoded with a streaming
 * `TextDecoder`, so a UTF-8 sequence split across chunks decodes correctly) or already decoded text;
 * use one kind per parser. Line endings LF, CRLF and lone CR are all accepted, also when a CRLF is
 * split across two chunks. Comment lines (`:` heartbeats) and the `id`/`retry` fields are ignored.
 *
 * If `onEvent` throws, the exception leaves `push`/`end` unchanged and the parser must be discarded.
 * Too long an event throws a `RangeError`.
 */
export class SseParser {
  private readonly onEvent: (event: SseEvent) => void;
  private readonly maxEventChars: number;
  private readonly decoder = new TextDecoder('utf-8');
  /** The unfinished last line of the previous chunks (never contains CR or LF). */
  private pending = '';
  /** The previous chunk ended with CR: a LF at the start of the next chunk belongs to that CR. */
  private skipLeadingLf = false;
  /** A BOM is only meaningful as the very first character of the stream. */
  private atStart = true;
  /** `undefined` = empty data buffer (no `data:` line seen), which the spec says is not dispatched. */
  private data: string | undefined = undefined;
  private eventType: string | undefined = undefined;

  constructor(onEvent: (event: SseEvent) => void, options: SseParserOptions = {}) {
    this.onEvent = onEvent;
    this.maxEventChars = options.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS;
  }

  /** Parses one more chunk; calls `onEvent` for every event it completes. */
  push(chunk: string | Uint8Array): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (text.length > 0) this.feed(text);
  }

  /**
   * The stream ended. Flushes the decoder, then treats an unterminated last line and an event that
   * lacks its closing blank line as complete. (The spec drops such a trailing event; servers that
   * close right after `data: [DONE]\n` exist, and a truncated JSON payload is caught by its reader.)
   */
  end(): void {
    const rest = this.decoder.decode();
    if (rest.length > 0) this.feed(rest);
    if (this.pending.length > 0) {
      const line = this.pending;
      this.pending = '';
      this.line(line);
    }
    this.dispatch();
    this.skipLeadingLf = false;
  }

  private feed(text: string): void {
    let pos = 0;
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (text.charCodeAt(0) === LF) pos = 1;
    }
    if (this.atStart && pos < text.length) {
      this.atStart = false;
      if (text.charCodeAt(pos) === BOM) pos += 1;
    }

    // indexOf runs in native code; each position is looked up again only once it has been passed,
    // so a stream without any CR pays for a single failed CR search per chunk.
    const length = text.length;
    let cr = text.indexOf('\r', pos);
    let lf = text.indexOf('\n', pos);
    while (cr !== -1 || lf !== -1) {
      let lineEnd: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        lineEnd = cr;
        if (cr + 1 === length) {
          next = length;
          this.skipLeadingLf = true;
        } else {
          next = text.charCodeAt(cr + 1) === LF ? cr + 2 : cr + 1;
        }
      } else {
        lineEnd = lf;
        next = lf + 1;
      }

      if (this.pending.length > 0) {
        const line = this.pending + text.slice(pos, lineEnd);
        this.pending = '';
        this.line(line);
      } else {
        this.line(text.slice(pos, lineEnd));
      }

      pos = next;
      if (cr !== -1 && cr < pos) cr = text.indexOf('\r', pos);
      if (lf !== -1 && lf < pos) lf = text.indexOf('\n', pos);
    }

    if (pos < length) {
      // V8 concatenates lazily (a rope), so a long line arriving in many chunks stays linear.
      this.pending = pos === 0 && this.pending.length === 0 ? text : this.pending + text.slice(pos);
      if (this.pending.length > this.maxEventChars) this.overflow();
    }
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    const first = line.charCodeAt(0);
    if (first === COLON) return;

    // The common case by far: `data: …`. Checked first so it costs no field slicing.
    if (line.startsWith('data:')) {
      this.appendData(line, 5);
      return;
    }

    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field === 'data') {
      // `data` without a colon: an empty value.
      this.appendData(line, line.length);
    } else if (field === 'event') {
      this.eventType = colon === -1 ? '' : valueOf(line, colon + 1);
    }
    // `id`, `retry` and unknown fields carry nothing an OpenAI-compatible stream needs.
  }

  private appendData(line: string, valueStart: number): void {
    const value = valueOf(line, valueStart);
    this.data = this.data === undefined ? value : this.data + '\n' + value;
    if (this.data.length > this.maxEventChars) this.overflow();
  }

  private dispatch(): void {
    const data = this.data;
    const eventType = this.eventType;
    this.data = undefined;
    this.eventType = undefined;
    if (data === undefined) return;
    this.onEvent(eventType === undefined ? { data } : { event: eventType, data });
  }

  private overflow(): never {
    this.pending = '';
    this.data = undefined;
    throw new RangeError(`SSE event longer than ${this.maxEventChars} characters`);
  }
}

/** The field value after the colon, without the one optional leading space. */
function valueOf(line: string, start: number): string {
  if (start >= line.length) return '';
  return line.charCodeAt(start) === SPACE ? line.slice(start + 1) : line.slice(start);
}
