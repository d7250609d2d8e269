import fc from 'fast-check';
import { awkwardValue } from './fuzz-settings.js';

/**
 * `POST /v1/chat/completions` bodies for the fuzz properties (the pure `parseChatRequest` one and the one
 * against a real gateway): near-valid bodies, every field right or wrong, and arbitrary JSON.
 */

/** The modes of the gateway the bodies are for. */
export const MODES = ['daily', 'deep'] as const;
/** Put into every content: an error message must never quote a message back (it may be private). */
export const MARKER = 'PRIVATE-MARKER-7f3a';

const content = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }).map((text) => `${MARKER}${text}`),
  fc.nat({ max: 600 }).map((n) => MARKER + 'z'.repeat(n)),
  fc.array(fc.oneof(fc.record({ type: fc.constant('text'), text: fc.string({ maxLength: 20 }).map((t) => MARKER + t) }), awkwardValue), { maxLength: 3 }),
  fc.constant(`${MARKER}\u0000`),
  awkwardValue,
);
const chatMessage = fc.oneof(
  fc.record({ role: fc.oneof(fc.constantFrom('user', 'assistant', 'system', 'developer', 'tool'), awkwardValue), content }, { requiredKeys: [] }),
  awkwardValue,
);
/** Bodies close to valid: each field right or wrong, extra keys, and entirely arbitrary JSON. */
export const chatBody = fc.oneof(
  fc
    .record(
      {
        model: fc.oneof(fc.constantFrom('auto', ...MODES, 'gpt-4o', 'toString', '__proto__', ''), awkwardValue),
        messages: fc.oneof(fc.array(chatMessage, { maxLength: 7 }), awkwardValue),
        stream: fc.oneof(fc.boolean(), awkwardValue),
        temperature: awkwardValue,
      },
      { requiredKeys: [] },
    )
    .chain((record) => fc.dictionary(fc.string({ maxLength: 8 }), awkwardValue, { maxKeys: 2 }).map((extra) => ({ ...extra, ...record }))),
  fc.jsonValue({ maxDepth: 3 }),
);

/**
 * Bodies that are valid but for their text (any code points: lone surrogates, NUL, control characters,
 * lengths around the caps), so most reach a job and the answer path is fuzzed too.
 */
export const runnableBody = fc
  .record({
    model: fc.constantFrom('auto', ...MODES),
    history: fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { maxLength: 5 }),
    text: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }), fc.constantFrom('hello', '안녕', '\ud800', 'a\u0000', ' ', '{"action":"route"}'), fc.nat({ max: 260 }).map((n) => 'w'.repeat(n))),
    stream: fc.boolean(),
    asParts: fc.boolean(),
  })
  .map(({ model, history, text, stream, asParts }) => ({
    model,
    stream,
    messages: [
      ...history.map((content, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content })),
      { role: 'user', content: asParts ? [{ type: 'text', text }] : text },
    ],
  }));
