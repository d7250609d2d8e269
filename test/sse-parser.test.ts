import { describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../src/actors/inference/sse-parser.js';

/** Feeds `chunks` through one parser and returns every event, `end()` included. */
function parse(chunks: Array<string | Uint8Array>): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return events;
}

const SAMPLE =
  ': heartbeat\n' +
  'data: {"a":1}\n\n' +
  'event: update\r\n' +
  'data:no-space\r\n' +
  'data:  two spaces\r\n\r\n' +
  'data: cr only\r\r' +
  ':comment\n' +
  'data\n\n' +
  'id: 7\nretry: 100\nunknown: x\ndata: last\n\n';

const SAMPLE_EVENTS: SseEvent[] = [
  { data: '{"a":1}' },
  { event: 'update', data: 'no-space\n two spaces' },
  { data: 'cr only' },
  { data: '' },
  { data: 'last' },
];

describe('SseParser', () => {
  it('parses a sample with LF, CRLF and CR endings, comments, fields and multi-line data', () => {
    expect(parse([SAMPLE])).toEqual(SAMPLE_EVENTS);
  });

  it('gives the same events for every split of the sample into two chunks', () => {
    for (let at = 0; at <= SAMPLE.length; at += 1) {
      expect(parse([SAMPLE.slice(0, at), SAMPLE.slice(at)]), `split at ${at}`).toEqual(SAMPLE_EVENTS);
    }
  });

  it('gives the same events for every split into three chunks', () => {
    for (let a = 0; a <= SAMPLE.length; a += 7) {
      for (let b = a; b <= SAMPLE.length; b += 1) {
        expect(parse([SAMPLE.slice(0, a), SAMPLE.slice(a, b), SAMPLE.slice(b)]), `splits at ${a}, ${b}`).toEqual(SAMPLE_EVENTS);
      }
    }
  });

  it('gives the same events when fed one character at a time', () => {
    expect(parse([...SAMPLE])).toEqual(SAMPLE_EVENTS);
  });

  it('treats a CR at the end of a chunk and a LF at the start of the next as one line break', () => {
    expect(parse(['data: a\r', '\ndata: b\r', '\n\r', '\n'])).toEqual([{ data: 'a\nb' }]);
    // …but a CR followed by a non-LF in the next chunk still ends its line.
    expect(parse(['data: a\r', 'data: b\r', '\r'])).toEqual([{ data: 'a\nb' }]);
  });

  it('ignores comment-only heartbeats and does not dispatch events without data', () => {
    expect(parse([': ping\n\n: ping\n\n', 'event: lonely\n\n', 'data: x\n\n'])).toEqual([{ data: 'x' }]);
  });

  it('joins multi-line data with LF and resets the event name after each event', () => {
    expect(parse(['event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n'])).toEqual([{ event: 'a', data: '1\n2' }, { data: '3' }]);
  });

  it('strips exactly one space after the colon', () => {
    expect(parse(['data:x\n\ndata: x\n\ndata:  x\n\n'])).toEqual([{ data: 'x' }, { data: 'x' }, { data: ' x' }]);
  });

  it('flushes an unterminated last event on end()', () => {
    expect(parse(['data: [DONE]'])).toEqual([{ data: '[DONE]' }]);
    expect(parse(['data: one\n'])).toEqual([{ data: 'one' }]);
  });

  it('strips a leading byte order mark only at the start of the stream', () => {
    expect(parse(['\uFEFFdata: a\n\n'])).toEqual([{ data: 'a' }]);
    expect(parse(['', '\uFEFF', 'data: a\n\n'])).toEqual([{ data: 'a' }]);
  });

  it('decodes UTF-8 split inside multi-byte characters at every byte position', () => {
    const text = 'data: {"content":"안녕하세요, 이드입니다 🙂"}\n\ndata: 두 번째\n\n';
    const bytes = new TextEncoder().encode(text);
    const expected = [{ data: '{"content":"안녕하세요, 이드입니다 🙂"}' }, { data: '두 번째' }];
    for (let at = 0; at <= bytes.length; at += 1) {
      expect(parse([bytes.subarray(0, at), bytes.subarray(at)]), `split at byte ${at}`).toEqual(expected);
    }
    expect(parse([...bytes].map((byte) => Uint8Array.of(byte)))).toEqual(expected);
  });

  it('delivers events as soon as their blank line arrives, not at end()', () => {
    const events: SseEvent[] = [];
    const parser = new SseParser((event) => events.push(event));
    parser.push('data: a\n');
    expect(events).toEqual([]);
    parser.push('\ndata: b');
    expect(events).toEqual([{ data: 'a' }]);
  });

  it('refuses to buffer an event beyond maxEventChars', () => {
    const parser = new SseParser(() => {}, { maxEventChars: 16 });
    expect(() => parser.push('data: 0123456789abcdef')).toThrow(RangeError);
    const lines = new SseParser(() => {}, { maxEventChars: 16 });
    expect(() => lines.push('data: 0123456789\ndata: 0123456789\n')).toThrow(RangeError);
  });

  it('lets an exception from onEvent propagate', () => {
    const parser = new SseParser(() => {
      throw new Error('stop');
    });
    expect(() => parser.push('data: x\n\n')).toThrow('stop');
  });
});
