import { z } from 'zod';

/**
 * The configuration file's schema (DESIGN §3). Every object is strict: an unknown key is a mistake the
 * operator should hear about, not something to ignore.
 */

const url = z.url({ protocol: /^https?$/ });
const positiveInt = z.number().int().positive();

/**
 * An auth token: at least 8 characters, no whitespace anywhere. A token of spaces is a password nobody
 * meant to set, and whitespace at its ends or inside cannot be presented as `Authorization: Bearer
 * TOKEN` (one word after `Bearer`, surrounding whitespace ignored).
 */
const token = z.string().superRefine((value, ctx) => {
  const problem = tokenProblem(value);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

function tokenProblem(value: string): string | null {
  if (value.trim().length === 0) return 'expected a token, got an empty or blank string';
  if (value.trim() !== value) return 'expected a token without leading or trailing whitespace';
  if (/\s/.test(value)) return 'expected a token without whitespace (a Bearer header cannot carry it)';
  if (value.length < 8) return `expected a token of at least 8 characters, got ${value.length}`;
  return null;
}

export const backendSchema = z.strictObject({
  baseUrl: url,
  model: z.string().min(1),
  concurrency: positiveInt.default(1),
  /** Whole non-streaming call, and the default time to first byte. */
  timeoutMs: positiveInt.default(120_000),
  /** Wall clock for one stream. */
  streamDeadlineMs: positiveInt.default(300_000),
  statusUrl: url.nullable().default(null),
  healthIntervalMs: positiveInt.default(30_000),
  tools: z.boolean().default(false),
  /** Extensions beyond DESIGN §3 (optional): finer deadlines and an API key for the server. */
  connectTimeoutMs: positiveInt.default(5_000),
  idleTimeoutMs: positiveInt.default(60_000),
  /** How long background work may wait before it is served ahead of newer foreground work. */
  backgroundMaxWaitMs: positiveInt.default(10_000),
  apiKey: z.string().min(1).nullable().default(null),
});

/** Calendar and email settings arrive with their tools; for now only the URL (checked against egress) is fixed. */
const toolEndpoint = z.looseObject({ url });

/** A mode's name, as the WebSocket and the OpenAI API's `model` field carry it. */
export const MODE_NAME = /^[a-z0-9_-]{1,32}$/;

/** The file's sections as written; `roles` and `modes` may be absent (see {@link configSchema}). */
export const configObjectSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65_535).default(8787),
    })
    .prefault({}),
  auth: z.strictObject({ tokens: z.array(token).default([]) }).prefault({}),
  database: z
    .strictObject({
      url: z.string().min(1).nullable().default(null),
      dataDir: z.string().min(1).default('./data'),
      /** Extensions beyond DESIGN §3 (PostgreSQL): giving up on a connection, and on a statement. */
      connectTimeoutMs: positiveInt.default(5_000),
      statementTimeoutMs: positiveInt.default(10_000),
    })
    .prefault({}),
  backends: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), backendSchema).default({
    local: backendSchema.parse({ baseUrl: 'http://127.0.0.1:11434/v1', model: 'llama3.2' }),
  }),
  /** Absent roles default to the first configured backend. */
  roles: z.strictObject({ classifier: z.string().min(1).optional(), reasoner: z.string().min(1).optional() }).optional(),
  /** Absent: one mode per backend, named after it. */
  modes: z.record(z.string().regex(MODE_NAME), z.string().min(1)).optional(),
  fallback: z.strictObject({ reasonerToClassifier: z.boolean().default(true) }).prefault({}),
  limits: z
    .strictObject({
      messageChars: positiveInt.default(8_000),
      turns: positiveInt.default(40),
      totalChars: positiveInt.default(32_000),
      maxActiveJobs: positiveInt.default(64),
      // Extensions beyond DESIGN §3 (issue 9): per-owner and per-connection bounds.
      /** Jobs one owner may have waiting or running at once; `rate_limited` beyond. */
      pendingJobsPerOwner: positiveInt.default(256),
      /** Characters of one model answer; a longer one ends with `error` `answer_too_long`. */
      answerChars: positiveInt.default(200_000),
      /** Open WebSocket connections per owner; the next one gets `rate_limited` and is closed (1013). */
      connectionsPerOwner: positiveInt.default(64),
      /** Frames per second a WebSocket connection may send (a token bucket with this burst). */
      framesPerSecond: positiveInt.default(20),
    })
    .prefault({}),
  egress: z
    .strictObject({ allowHosts: z.array(z.string().min(1)).default(['127.0.0.1', 'localhost', '::1']) })
    .prefault({}),
  tools: z
    .strictObject({
      calendar: toolEndpoint.nullable().default(null),
      email: toolEndpoint.nullable().default(null),
      documents: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    })
    .prefault({}),
  synology: z
    .strictObject({
      token: z.string().min(1),
      incomingUrl: url,
      mode: z.enum(['incoming', 'chatbot']).default('incoming'),
    })
    .nullable()
    .default(null),
  persona: z
    .strictObject({ name: z.string().min(1).default('이드'), locale: z.string().min(2).default('ko') })
    .prefault({}),
  /** Extension beyond DESIGN §3: how long running jobs may finish after SIGTERM before they are cancelled. */
  shutdown: z.strictObject({ graceMs: z.number().int().min(0).default(10_000) }).prefault({}),
});

/**
 * The configuration with every default applied, `roles` and `modes` included: what is not written
 * defaults to the configured backends (DESIGN §3), so a one-backend config needs nothing else.
 */
export const configSchema = configObjectSchema.transform((config) => {
  const names = Object.keys(config.backends);
  const first = names[0] ?? '';
  const roles = { classifier: config.roles?.classifier ?? first, reasoner: config.roles?.reasoner ?? first };
  return { ...config, roles, modes: config.modes ?? impliedModes(names) };
});

/**
 * One mode per backend, named after it (lower-cased, other characters as `-`; `auto` is the pipeline's
 * name, never a mode); clashes keep the first.
 */
export function impliedModes(backendNames: readonly string[]): Record<string, string> {
  const modes: Record<string, string> = {};
  for (const name of backendNames) {
    const mode = name.toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 32);
    if (MODE_NAME.test(mode) && mode !== 'auto' && !Object.hasOwn(modes, mode)) modes[mode] = name;
  }
  return modes;
}

/** The validated, defaulted configuration. Frozen once loaded. */
export type Config = z.infer<typeof configSchema>;
export type BackendConfig = z.infer<typeof backendSchema>;
