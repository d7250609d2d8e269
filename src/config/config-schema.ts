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
  baseUrl: url.describe('The server\'s OpenAI-compatible API root, e.g. `http://127.0.0.1:11434/v1`; its host must be in `egress.allowHosts`.'),
  model: z.string().min(1).describe('The model to ask for; the health probe checks that `GET /models` lists it.'),
  concurrency: positiveInt.default(1).describe('Requests the server runs at once; more wait in this backend\'s mailbox.'),
  timeoutMs: positiveInt.default(120_000).describe('Limit for a whole non-streamed call, and for the first byte of a stream.'),
  streamDeadlineMs: positiveInt.default(300_000).describe('Wall-clock limit for one streamed answer.'),
  statusUrl: url.nullable().default(null).describe('A status API reporting `active_jobs` (for the load level); null: load from health latency.'),
  healthIntervalMs: positiveInt.default(30_000).describe('Time between health probes.'),
  tools: z.boolean().default(false).describe('The model can call tools natively (used by the reasoner\'s tool loop).'),
  connectTimeoutMs: positiveInt.default(5_000).describe('Limit for opening a connection to the server.'),
  idleTimeoutMs: positiveInt.default(60_000).describe('Longest gap between two chunks of a stream.'),
  backgroundMaxWaitMs: positiveInt.default(10_000).describe('How long background work (health pings) may wait before it is served ahead of newer requests.'),
  apiKey: z.string().min(1).nullable().default(null).describe('Bearer token for servers that want one.'),
});

/** A tool account's `passwordEnv`: the name of the environment variable that holds its password. */
const passwordEnv = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable')
  .optional()
  .describe('Name of the environment variable that holds the password, instead of `password` (exactly one of the two).');

/** A tool account gives its password once: in the file (`password`) or by a variable's name (`passwordEnv`). */
function hasOnePassword(account: { password?: string | undefined; passwordEnv?: string | undefined }): boolean {
  return (account.password === undefined) !== (account.passwordEnv === undefined);
}
const ONE_PASSWORD = { message: 'expected exactly one of password and passwordEnv', path: ['password'] };

/** An IMAP mailbox (`tools.email`), read only: the server, the account, the folder searched by default. */
export const emailSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^imaps?$/ })
      .describe('`imaps://host:993` (TLS) or `imap://host:143` (STARTTLS; plain text only to a loopback host); its host must be in `egress.allowHosts`.'),
    user: z.string().min(1).describe('The IMAP login name.'),
    password: z.string().min(1).optional().describe('The IMAP password (masked by `--print-config`); or use `passwordEnv`.'),
    passwordEnv,
    folder: z.string().min(1).default('INBOX').describe('The folder searched when a request names none.'),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe('Check the server\'s TLS certificate (imaps, STARTTLS); false accepts a self-signed one.'),
  })
  .refine(hasOnePassword, ONE_PASSWORD);

/** How long a calendar draft waits for the user's yes or no by default (issue 11). */
export const DEFAULT_DRAFT_TTL_MS = 10 * 60 * 1000;

/** A CalDAV calendar (`tools.calendar`): the server, the account, which calendar, how long a draft waits. */
export const calendarSchema = z
  .strictObject({
    url: url.describe('The CalDAV server\'s URL (e.g. `http://127.0.0.1:5232/`); its host must be in `egress.allowHosts`.'),
    user: z.string().min(1).describe('The CalDAV user name.'),
    password: z.string().min(1).optional().describe('The CalDAV password (masked by `--print-config`); or use `passwordEnv`.'),
    passwordEnv,
    calendar: z
      .string()
      .min(1)
      .optional()
      .describe('The calendar to use: its display name or the last segment of its path. Absent: the calendar `url` points at, else the first one found (the log names it).'),
    draftTtlMs: positiveInt
      .default(DEFAULT_DRAFT_TTL_MS)
      .describe('How long a new event\'s draft waits for the user\'s yes or no; after that it is dropped unwritten.'),
  })
  .refine(hasOnePassword, ONE_PASSWORD);

/** A mode's name, as the WebSocket and the OpenAI API's `model` field carry it. */
export const MODE_NAME = /^[a-z0-9_-]{1,32}$/;

/** The file's sections as written; `roles` and `modes` may be absent (see {@link configSchema}). */
export const configObjectSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1').describe('Address to listen on; anything but loopback needs `auth.tokens`.'),
      port: z.number().int().min(0).max(65_535).default(8787).describe('Port for HTTP and WebSocket (`SWITCHBOARD_PORT`); 0 picks a free one.'),
    })
    .prefault({}),
  auth: z
    .strictObject({
      tokens: z
        .array(token)
        .default([])
        .describe('Bearer tokens that may connect (`SWITCHBOARD_TOKEN`); each at least 8 characters, no whitespace. Empty: no auth, loopback only.'),
    })
    .prefault({}),
  database: z
    .strictObject({
      url: z.string().min(1).nullable().default(null).describe('PostgreSQL URL (`DATABASE_URL`); null: the embedded PGlite database.'),
      dataDir: z.string().min(1).default('./data').describe('Folder of the embedded database (one process at a time).'),
      connectTimeoutMs: positiveInt.default(5_000).describe('PostgreSQL: limit for opening a connection.'),
      statementTimeoutMs: positiveInt.default(10_000).describe('PostgreSQL: limit for one statement, timed on our side.'),
    })
    .prefault({}),
  backends: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), backendSchema)
    .default({ local: backendSchema.parse({ baseUrl: 'http://127.0.0.1:11434/v1', model: 'llama3.2' }) })
    .describe('Model servers by name (letters, digits, `_.-`). Default: `local` at Ollama\'s `http://127.0.0.1:11434/v1`, model `llama3.2`.'),
  roles: z
    .strictObject({
      classifier: z.string().min(1).optional().describe('Backend that classifies each message and answers simple ones. Default: the first backend.'),
      reasoner: z.string().min(1).optional().describe('Backend for messages routed to reasoning. Default: the first backend.'),
    })
    .optional(),
  modes: z
    .record(z.string().regex(MODE_NAME), z.string().min(1))
    .optional()
    .describe('Mode name → backend, for chatting straight with one backend. Default: one mode per backend, named after it.'),
  fallback: z
    .strictObject({
      reasonerToClassifier: z
        .boolean()
        .default(true)
        .describe('When the reasoner fails before its first byte, the classifier answers instead.'),
    })
    .prefault({}),
  limits: z
    .strictObject({
      messageChars: positiveInt.default(8_000).describe('Longest message, in characters.'),
      turns: positiveInt.default(40).describe('Most turns of history a request may carry.'),
      totalChars: positiveInt.default(32_000).describe('Most characters of history and message together.'),
      maxActiveJobs: positiveInt.default(64).describe('Jobs running at once; more wait in line, served round robin across owners.'),
      pendingJobsPerOwner: positiveInt.default(256).describe('Jobs one owner may have waiting or running; beyond, `rate_limited`.'),
      answerChars: positiveInt.default(200_000).describe('Longest model answer; beyond, the job ends with `answer_too_long`.'),
      connectionsPerOwner: positiveInt.default(64).describe('Open WebSocket connections per owner; beyond, `rate_limited` and close 1013.'),
      framesPerSecond: positiveInt.default(20).describe('Frames per second one WebSocket connection may send (a token bucket with this burst).'),
    })
    .prefault({}),
  egress: z
    .strictObject({
      allowHosts: z
        .array(z.string().min(1))
        .default(['127.0.0.1', 'localhost', '::1'])
        .describe('Hosts the gateway may connect to (backends, tools, Synology); `*.example.org` matches subdomains.'),
    })
    .prefault({}),
  tools: z
    .strictObject({
      calendar: calendarSchema.nullable().default(null).describe('CalDAV calendar settings; null: the calendar tool is off.'),
      email: emailSchema.nullable().default(null).describe('IMAP mailbox settings (read only); null: the email tool is off.'),
      documents: z
        .strictObject({ enabled: z.boolean().default(true).describe('Document search over what `npm run ingest` loaded.') })
        .prefault({}),
    })
    .prefault({}),
  synology: z
    .strictObject({
      token: z.string().min(1).describe('The outgoing webhook\'s token (`SYNOLOGY_TOKEN`).'),
      incomingUrl: url.describe('The incoming webhook or bot API URL answers are posted to (`SYNOLOGY_INCOMING_URL`).'),
      mode: z.enum(['incoming', 'chatbot']).default('incoming').describe('`incoming` webhook, or `chatbot` (the bot API, with `user_ids`).'),
    })
    .nullable()
    .default(null)
    .describe('Synology Chat bot settings; null: off.'),
  persona: z
    .strictObject({
      name: z.string().min(1).default('이드').describe('The assistant\'s name in its prompts.'),
      locale: z
        .string()
        .min(2)
        .default('ko')
        .describe('Language of prompts and notices for a message without Hangul (Hangul is always answered in Korean; with `ko`, other messages get English).'),
      timeZone: z
        .string()
        .refine(isTimeZone, { message: 'expected an IANA time zone name such as "Asia/Seoul", "Europe/Berlin" or "UTC"' })
        .optional()
        .describe('IANA time zone the models are told and "today"/"tomorrow" mean. Default: `Asia/Seoul` when `locale` is `ko`, else the host\'s.'),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      graceMs: z.number().int().min(0).default(10_000).describe('After SIGTERM, how long running jobs may finish before they are cancelled.'),
    })
    .prefault({}),
});

/**
 * The configuration with every default applied, `roles` and `modes` included: what is not written
 * defaults to the configured backends (DESIGN §3), so a one-backend config needs nothing else.
 */
export const configSchema = configObjectSchema.transform((config) => {
  const names = Object.keys(config.backends);
  const first = names[0] ?? '';
  const roles = { classifier: config.roles?.classifier ?? first, reasoner: config.roles?.reasoner ?? first };
  const timeZone = config.persona.timeZone ?? defaultTimeZone(config.persona.locale);
  return { ...config, roles, modes: config.modes ?? impliedModes(names), persona: { ...config.persona, timeZone } };
});

/** Whether `name` is a time zone this runtime knows (IANA names, `UTC`). */
function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Korean users are in Korea (the seeds' zone); anyone else gets the host's own zone. */
export function defaultTimeZone(locale: string): string {
  if (locale.toLowerCase().split(/[-_]/)[0] === 'ko') return 'Asia/Seoul';
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

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
