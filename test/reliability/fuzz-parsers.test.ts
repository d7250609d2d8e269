import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../../src/actors/inference/sse-parser.js';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load-config.js';
import { classificationSchema, parseClassification } from '../../src/jobs/classification.js';
import { isOpenAiError, parseChatRequest } from '../../src/transport/openai-api.js';
import { chatBody, MARKER, MODES } from './fuzz-openai-bodies.js';
import { awkwardString, awkwardValue, fuzzParameters, runsOf, type FuzzBudget } from './fuzz-settings.js';

/**
 * Fuzzing the parsers that read untrusted text (issue 14, item 2): every input gives a valid result or
 * the parser's own clear error, never another exception. Pure functions: many runs, each in microseconds.
 */

// --- SSE ---------------------------------------------------------------------------------------------

/** Pieces an event stream is made of, and some that break it, mixed with arbitrary text. */
const ssePiece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('data: ', 'data:', 'data', 'event: update', 'event:', ': ping', ':', 'id: 7', 'retry: 10', 'unknown: x') },
  { weight: 4, arbitrary: fc.constantFrom('\n', '\r', '\r\n', '\n\n', '\r\r') },
  { weight: 2, arbitrary: fc.constantFrom('[DONE]', '{"choices":[{"delta":{"content":"hi"}}]}', '{', '\ufeff', 'é', '가', '😀', '\u0000') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

/** A byte stream: the pieces as UTF-8, with arbitrary bytes (broken UTF-8 too) spliced in. */
const sseBytes = fc
  .array(fc.oneof({ weight: 5, arbitrary: ssePiece.map((text) => new Uint8Array(Buffer.from(text, 'utf8'))) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }) }), {
    maxLength: 60,
  })
  .map((parts) => new Uint8Array(Buffer.concat(parts)));

/** Cut points into a stream of `length` bytes, sorted (0 and `length` allowed: empty chunks too). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  return chunks;
}

/** The events of a stream fed in `chunks`, or the error the parser threw. */
function parseSse(chunks: Array<Uint8Array | string>, maxEventChars?: number): { events: SseEvent[]; error?: unknown } {
  const events: SseEvent[] = [];
  const parser = new SseParser((event) => events.push(event), maxEventChars === undefined ? {} : { maxEventChars });
  try {
    for (const chunk of chunks) parser.push(chunk);
    parser.end();
    return { events };
  } catch (error) {
    return { events, error };
  }
}

const SSE_SPLITS: FuzzBudget = { seed: 1401, numRuns: 1500, runMs: 1_000, totalMs: 20_000 };
const SSE_LIMIT: FuzzBudget = { seed: 1402, numRuns: 500, runMs: 1_000, totalMs: 10_000 };

describe('fuzz: the SSE parser (src/actors/inference/sse-parser.ts)', () => {
  it(`arbitrary byte streams split at arbitrary points give the same events as the whole stream (${runsOf(SSE_SPLITS)})`, () => {
    fc.assert(
      fc.property(sseBytes, fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
        const whole = parseSse([bytes]);
        expect(whole.error).toBeUndefined();
        for (const event of whole.events) {
          expect(typeof event.data).toBe('string');
          expect(event.event === undefined || typeof event.event === 'string').toBe(true);
        }
        expect(parseSse(chunked(bytes, cuts))).toEqual(whole);
        // One byte at a time: every UTF-8 sequence and every CRLF split.
        expect(parseSse([...bytes].map((byte) => Uint8Array.of(byte)))).toEqual(whole);
        // Already decoded text, split anywhere (the parser's other input kind).
        const text = new TextDecoder().decode(bytes);
        const bounds = [0, ...cuts.map((cut) => cut % (text.length + 1)).sort((a, b) => a - b), text.length];
        expect(parseSse(bounds.slice(1).map((end, i) => text.slice(bounds[i], end)))).toEqual(whole);
      }),
      fuzzParameters(SSE_SPLITS),
    );
  });

  it(`with a small event limit, an arbitrary stream gives events or the parser's RangeError, nothing else (${runsOf(SSE_LIMIT)})`, () => {
    fc.assert(
      fc.property(sseBytes, fc.array(fc.nat(), { maxLength: 12 }), fc.integer({ min: 1, max: 64 }), (bytes, cuts, max) => {
        for (const chunks of [[bytes], chunked(bytes, cuts)]) {
          const { events, error } = parseSse(chunks, max);
          if (error !== undefined) {
            expect(error).toBeInstanceOf(RangeError);
            expect((error as Error).message).toMatch(/^SSE event longer than \d+ characters$/);
          }
          for (const event of events) expect(event.data.length).toBeLessThanOrEqual(max);
        }
      }),
      fuzzParameters(SSE_LIMIT),
    );
  });
});

// --- classification ----------------------------------------------------------------------------------

const action = fc.oneof(fc.constantFrom('direct', 'route', 'clarify', 'tools', 'tool', 'Direct', ' ROUTE ', 'confirmDraft', 'cancelDraft', 'systemStatus'), awkwardValue);
/** JSON the classifier might write: the right keys with any values, extra keys, some keys missing. */
const modelJson = fc
  .record(
    {
      action,
      response: awkwardValue,
      tool: fc.oneof(fc.constantFrom('calendar', 'calendar.today', 'email.search', '.', 'x.'), awkwardValue),
      operation: awkwardValue,
      params: fc.oneof(fc.constant('{"query":"x"}'), fc.constant('not json'), awkwardValue),
    },
    { requiredKeys: [] },
  )
  .chain((record) => fc.dictionary(fc.string({ maxLength: 8 }), awkwardValue, { maxKeys: 2 }).map((extra) => ({ ...extra, ...record })))
  .map((value) => JSON.stringify(value));

/** Model output: bare text, JSON, JSON wrapped in prose, code fences and `<think>` blocks, truncated. */
const modelOutput = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  modelJson,
  fc
    .tuple(
      fc.constantFrom('', 'Sure! ', '<think>maybe {"action":"route"}</think>', '<think>unclosed {', '```json\n', '`'),
      modelJson,
      fc.constantFrom('', '\n```', ' hope that helps }', '`', '</think>'),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([before, json, after, cut]) => {
      const text = before + json + after;
      return cut === undefined ? text : text.slice(0, cut % (text.length + 1));
    }),
);

const CLASSIFY: FuzzBudget = { seed: 1403, numRuns: 3000, runMs: 1_000, totalMs: 20_000 };
const CLASSIFY_PLAIN: FuzzBudget = { seed: 1404, numRuns: 1000, runMs: 1_000, totalMs: 10_000 };

describe('fuzz: the classification parser (src/jobs/classification.ts)', () => {
  it(`arbitrary model output gives a valid classification a model may give, never a throw (${runsOf(CLASSIFY)})`, () => {
    fc.assert(
      fc.property(modelOutput, (raw) => {
        const result = parseClassification(raw);
        expect(classificationSchema.safeParse(result).success).toBe(true);
        // Only the user's own words (pre-route) confirm a draft or ask for the status.
        expect(['direct', 'route', 'clarify', 'tools']).toContain(result.action);
        if ('response' in result && result.response !== undefined) {
          expect(result.response).toBe(result.response.trim());
          expect(result.response.length).toBeGreaterThan(0);
        }
      }),
      fuzzParameters(CLASSIFY),
    );
  });

  it(`text without JSON, backticks or <think> becomes direct with that text, trimmed (${runsOf(CLASSIFY_PLAIN)})`, () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }).filter((text) => !/[{`]|<think>/i.test(text)),
        (text) => {
          const cleaned = text.trim();
          expect(parseClassification(text)).toEqual(cleaned === '' ? { action: 'direct' } : { action: 'direct', response: cleaned });
        },
      ),
      fuzzParameters(CLASSIFY_PLAIN),
    );
  });
});

// --- OpenAI request bodies (pure) -------------------------------------------------------------------

const LIMITS = { messageChars: 200, turns: 4, totalChars: 500 };

const OPENAI_BODY: FuzzBudget = { seed: 1405, numRuns: 3000, runMs: 1_000, totalMs: 20_000 };

describe('fuzz: parseChatRequest (src/transport/openai-api.ts)', () => {
  it(`an arbitrary or near-valid body gives a checked request or a documented 4xx error that quotes no message (${runsOf(OPENAI_BODY)})`, () => {
    fc.assert(
      fc.property(chatBody, (body) => {
        const result = parseChatRequest(body, MODES, LIMITS);
        if (isOpenAiError(result)) {
          expect([400, 413, 422]).toContain(result.status);
          expect(Object.keys(result.body.error).sort()).toEqual(['code', 'message', 'type']);
          expect(result.body.error.type).toBe('invalid_request_error');
          expect(result.body.error.code).toMatch(/^[a-z0-9_]{1,64}$/);
          expect(result.body.error.message.length).toBeGreaterThan(0);
          expect(result.body.error.message).not.toContain(MARKER);
          return;
        }
        expect(['auto', ...MODES]).toContain(result.model);
        expect(result.mode).toBe(result.model);
        expect(typeof result.stream).toBe('boolean');
        expect(typeof result.text).toBe('string');
        expect(result.text.length).toBeLessThanOrEqual(LIMITS.messageChars);
        expect(result.text).not.toContain('\u0000');
        expect(result.history.length).toBeLessThanOrEqual(LIMITS.turns);
        for (const turn of result.history) {
          expect(['user', 'assistant']).toContain(turn.role);
          expect(turn.content.length).toBeLessThanOrEqual(LIMITS.messageChars);
          expect(turn.content).not.toContain('\u0000');
        }
        const total = result.text.length + result.history.reduce((sum, turn) => sum + turn.content.length, 0);
        expect(total).toBeLessThanOrEqual(LIMITS.totalChars);
      }),
      fuzzParameters(OPENAI_BODY),
    );
  });
});

// --- config files ------------------------------------------------------------------------------------

/** A valid config to start from; the mutations below break it in one or a few places. */
const BASE_CONFIG = {
  server: { host: '127.0.0.1', port: 8787 },
  auth: { tokens: [] },
  database: { url: null, dataDir: './data' },
  backends: {
    small: { baseUrl: 'http://127.0.0.1:8800/v1', model: 'm', concurrency: 1, timeoutMs: 120000 },
    large: { baseUrl: 'http://127.0.0.1:8801/v1', model: 'n', tools: true },
  },
  roles: { classifier: 'small', reasoner: 'large' },
  modes: { daily: 'small', deep: 'large' },
  fallback: { reasonerToClassifier: true },
  limits: { messageChars: 8000, turns: 40 },
  egress: { allowHosts: ['127.0.0.1', 'localhost', '::1'] },
  tools: { calendar: null, email: null, documents: { enabled: true } },
  synology: null,
  persona: { name: '이드', locale: 'ko', timeZone: 'Asia/Seoul' },
};

const CONFIG_PATHS = [
  [],
  ['server'],
  ['server', 'host'],
  ['server', 'port'],
  ['auth', 'tokens'],
  ['database', 'url'],
  ['database', 'dataDir'],
  ['backends'],
  ['backends', 'small'],
  ['backends', 'small', 'baseUrl'],
  ['backends', 'small', 'concurrency'],
  ['backends', 'large', 'statusUrl'],
  ['backends', '__proto__'],
  ['backends', 'toString'],
  ['roles', 'classifier'],
  ['roles', 'reasoner'],
  ['modes'],
  ['modes', 'daily'],
  ['modes', 'toString'],
  ['modes', '__proto__'],
  ['limits', 'turns'],
  ['egress', 'allowHosts'],
  ['tools', 'calendar'],
  ['tools', 'email'],
  ['synology'],
  ['persona', 'timeZone'],
  ['persona', 'locale'],
  ['__proto__'],
  ['constructor'],
] as const;

const configValue = fc.oneof(
  awkwardValue,
  fc.constantFrom(
    'http://127.0.0.1:1/v1',
    'http://evil.example.org/v1',
    'not a url',
    'Mars/Olympus',
    { url: 'http://127.0.0.1:5232/', username: 'u', password: 'p' },
    { token: 't', incomingUrl: 'http://127.0.0.1:1/x', mode: 'chatbot' },
    { host: '127.0.0.1', port: 993, tls: true, username: 'u', passwordEnv: 'X' },
    { baseUrl: 'http://127.0.0.1:2/v1', model: 'x' },
  ),
);

/** A copy of the base with `value` set at `path`, as an own property (JSON may carry `__proto__`). */
function setAt(base: unknown, path: readonly string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy: Record<string, unknown> = typeof base === 'object' && base !== null && !Array.isArray(base) ? { ...(base as Record<string, unknown>) } : {};
  const [head, ...rest] = path as [string, ...string[]];
  const inner = Object.hasOwn(copy, head) ? copy[head] : undefined;
  Object.defineProperty(copy, head, { value: setAt(inner, rest, value), enumerable: true, writable: true, configurable: true });
  return copy;
}

const nearValidConfig = fc
  .array(fc.tuple(fc.constantFrom(...CONFIG_PATHS), configValue), { minLength: 1, maxLength: 3 })
  .map((mutations) => mutations.reduce<unknown>((config, [path, value]) => setAt(config, path, value), BASE_CONFIG));

/** Calls `load` and returns the ConfigError's problems, [] for a config; any other exception fails. */
function configOutcome(load: () => unknown): string[] {
  try {
    const config = load();
    expect(typeof config).toBe('object');
    expect(Object.isFrozen(config)).toBe(true);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(error)}`, { cause: error });
    expect(error.problems.length).toBeGreaterThan(0);
    for (const problem of error.problems) {
      expect(typeof problem).toBe('string');
      expect(problem.trim().length).toBeGreaterThan(0);
    }
    expect(error.message).toMatch(/^invalid configuration:\n/);
    return error.problems;
  }
}

const CONFIG_OBJECT: FuzzBudget = { seed: 1406, numRuns: 600, runMs: 1_000, totalMs: 30_000 };
const CONFIG_TEXT: FuzzBudget = { seed: 1407, numRuns: 400, runMs: 1_000, totalMs: 30_000 };

describe('fuzz: config files (src/config/load-config.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-fuzz-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`parseConfig: arbitrary JSON and near-valid configs give a frozen config or a ConfigError with one line per problem (${runsOf(CONFIG_OBJECT)})`, () => {
    expect(configOutcome(() => parseConfig(BASE_CONFIG))).toEqual([]);
    fc.assert(
      fc.property(fc.oneof(nearValidConfig, fc.jsonValue({ maxDepth: 3 })), (raw) => {
        configOutcome(() => parseConfig(raw));
      }),
      fuzzParameters(CONFIG_OBJECT),
    );
  });

  it(`loadConfig: arbitrary file text (broken JSON, truncated configs) and environment values give a config or a ConfigError (${runsOf(CONFIG_TEXT)})`, () => {
    const path = join(dir, 'switchboard.config.json');
    const fileText = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      nearValidConfig.map((config) => JSON.stringify(config)),
      // Near-valid text: a valid config cut short, or with one character replaced.
      fc.tuple(nearValidConfig.map((config) => JSON.stringify(config, null, 2)), fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 2 })).map(([text, at, insert]) => {
        const cut = at % (text.length + 1);
        return at % 2 === 0 ? text.slice(0, cut) : text.slice(0, cut) + insert + text.slice(cut + 1);
      }),
    );
    const env = fc.record(
      {
        DATABASE_URL: fc.oneof(awkwardString, fc.constantFrom('postgres://u:p@127.0.0.1/db', 'postgres://[::1', 'x://@:')),
        SWITCHBOARD_PORT: fc.oneof(awkwardString, fc.constantFrom('0', '65536', '-1', '1e3', 'abc')),
        SWITCHBOARD_TOKEN: awkwardString,
        SYNOLOGY_TOKEN: awkwardString,
        SYNOLOGY_INCOMING_URL: fc.oneof(awkwardString, fc.constantFrom('http://127.0.0.1:1/x?token=t', 'http://[')),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fileText, env, (text, variables) => {
        writeFileSync(path, text);
        const problems = configOutcome(() => loadConfig({ path, env: variables }));
        // A JSON syntax error names the file and says where and what.
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        if (!parses) {
          expect(problems).toHaveLength(1);
          expect(problems[0]).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(:\\d+:\\d+)?: `));
        }
      }),
      fuzzParameters(CONFIG_TEXT),
    );
  });
});
