/**
 * Reads `prompts/` once at start and composes the system prompts (DESIGN §2, seed 003): persona →
 * rules → task, one string per task. The rules are load-bearing (the gateway must not answer without
 * them), so a missing rules file stops the start; the persona is flavour, so a missing one is quietly
 * empty. Every composed prompt must fit a character budget — small local models lose the end of long
 * system prompts, and the task part comes last — so an oversized prompt stops the start as well.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { SwitchboardError } from '../errors.js';
import {
  FALLBACK_LOCALE,
  fillTemplate,
  messagesFileSchema,
  placeholdersIn,
  type Messages,
  type MessagesFile,
} from './messages.js';
import { preRouteRulesSchema, type PreRouteRules } from './pre-route-rules.js';

/** The tasks a system prompt is composed for; each has `prompts/<task>.txt`. */
export const PROMPT_TASKS = ['classifier', 'reasoner', 'tool-format', 'react'] as const;
export type PromptTask = (typeof PROMPT_TASKS)[number];

/** Default limit of one composed system prompt, in characters (UTF-16 code units). */
export const PROMPT_BUDGET_CHARS = 6_000;

/** `prompts/` of this checkout, found from this file rather than the working directory. */
export const DEFAULT_PROMPTS_DIR = fileURLToPath(new URL('../../prompts/', import.meta.url));

/** Who the assistant is: `config.persona`. */
export interface PersonaSettings {
  name: string;
  locale: string;
}

export const DEFAULT_PERSONA: Readonly<PersonaSettings> = Object.freeze({ name: '이드', locale: 'ko' });

/** Options of {@link loadPrompts}. */
export interface LoadPromptsOptions {
  /** Limit of each composed system prompt (default {@link PROMPT_BUDGET_CHARS}). */
  budgetChars?: number;
}

/** Everything under `prompts/`, validated and composed. Frozen. */
export interface Prompts {
  readonly persona: Readonly<PersonaSettings>;
  /** The keyword rules for `preRoute`. */
  readonly preRoute: PreRouteRules;
  readonly budgetChars: number;
  /** The composed system prompt of `task` (persona → rules → task, placeholders filled). */
  systemPrompt(task: PromptTask): string;
  /**
   * The fixed sentences of `locale` (default: the persona's). An unknown locale falls back to its
   * language (`ko-KR` → `ko`), then to English. Runtime placeholders (`{{tool}}`, …) are left for
   * {@link fillTemplate}.
   */
  messages(locale?: string): Messages;
}

/** A prompt file is missing, unreadable or invalid. The message names the file. */
export class PromptFileError extends SwitchboardError {
  readonly code = 'prompt_file';
  readonly retryable = false;
  constructor(
    readonly file: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super('prompt_file', `${file}: ${problem}`, options);
  }
}

/** A composed system prompt is longer than its budget. */
export class PromptBudgetError extends SwitchboardError {
  readonly code = 'prompt_budget_exceeded';
  readonly retryable = false;
  constructor(
    readonly task: PromptTask,
    readonly size: number,
    readonly budget: number,
  ) {
    super(
      'prompt_budget_exceeded',
      `the composed "${task}" system prompt has ${size} characters, over its budget of ${budget} ` +
        '(shorten persona.txt, rules.txt or the task file)',
    );
  }
}

/**
 * Loads and checks `dir` (default: this checkout's `prompts/`): persona.txt (optional), rules.txt,
 * one file per task, pre-route.json and messages.json. Throws {@link PromptFileError} or
 * {@link PromptBudgetError}; call it once at start and let a throw stop the start.
 */
export async function loadPrompts(
  dir: string = DEFAULT_PROMPTS_DIR,
  persona: Readonly<PersonaSettings> = DEFAULT_PERSONA,
  options: LoadPromptsOptions = {},
): Promise<Prompts> {
  const budgetChars = options.budgetChars ?? PROMPT_BUDGET_CHARS;
  const values = { persona_name: persona.name, locale: persona.locale, language: languageName(persona.locale) };

  const personaText = await readText(dir, 'persona.txt', { optional: true });
  const rulesText = await readText(dir, 'rules.txt');
  const layers = [
    fill(join(dir, 'persona.txt'), personaText, values),
    fill(join(dir, 'rules.txt'), rulesText, values),
  ];

  const composed = new Map<PromptTask, string>();
  for (const task of PROMPT_TASKS) {
    const file = `${task}.txt`;
    const taskText = fill(join(dir, file), await readText(dir, file), values);
    const prompt = [...layers, taskText].filter((part) => part !== '').join('\n\n');
    if (prompt.length > budgetChars) throw new PromptBudgetError(task, prompt.length, budgetChars);
    composed.set(task, prompt);
  }

  const preRoute = deepFreeze(await readJson(dir, 'pre-route.json', preRouteRulesSchema));
  const messagesFile = deepFreeze(fillStrings(await readJson(dir, 'messages.json', messagesFileSchema), values));

  const prompts: Prompts = {
    persona: Object.freeze({ name: persona.name, locale: persona.locale }),
    preRoute,
    budgetChars,
    systemPrompt(task) {
      const prompt = composed.get(task);
      // Only reachable by casting around the type: every task was composed above.
      if (prompt === undefined) throw new RangeError(`unknown prompt task "${String(task)}"`);
      return prompt;
    },
    messages: (locale = persona.locale) => pickLocale(messagesFile, locale),
  };
  return Object.freeze(prompts);
}

/** Reads one text file; BOM and surrounding whitespace removed. `optional`: missing reads as ''. */
async function readText(dir: string, file: string, options: { optional?: boolean } = {}): Promise<string> {
  const path = join(dir, file);
  try {
    return (await readFile(path, 'utf8')).replace(/^\uFEFF/, '').trim();
  } catch (error) {
    if (isNotFound(error)) {
      if (options.optional) return '';
      throw new PromptFileError(path, 'the file is missing', { cause: error });
    }
    throw new PromptFileError(path, 'the file cannot be read', { cause: error });
  }
}

async function readJson<S extends z.ZodType>(dir: string, file: string, schema: S): Promise<z.output<S>> {
  const path = join(dir, file);
  let raw: unknown;
  try {
    raw = JSON.parse(await readText(dir, file));
  } catch (error) {
    if (error instanceof PromptFileError) throw error;
    throw new PromptFileError(path, `not valid JSON (${error instanceof Error ? error.message : 'parse error'})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new PromptFileError(path, `invalid:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Fills the persona placeholders of a prompt file; anything left is a typo the operator should see. */
function fill(file: string, text: string, values: Readonly<Record<string, string>>): string {
  const filled = fillTemplate(text, values);
  const unknown = placeholdersIn(filled);
  if (unknown.length > 0) {
    const known = Object.keys(values).map((name) => `{{${name}}}`).join(', ');
    throw new PromptFileError(file, `unknown placeholder {{${unknown[0]}}} (known: ${known})`);
  }
  return filled;
}

/** Fills persona placeholders in every string of the messages file, keeping runtime ones. */
function fillStrings<T>(value: T, values: Readonly<Record<string, string>>): T {
  if (typeof value === 'string') return fillTemplate(value, values) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => fillStrings(item, values)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]: [string, unknown]) => [key, fillStrings(item, values)]),
    ) as T;
  }
  return value;
}

function pickLocale(file: MessagesFile, locale: string): Messages {
  const language = locale.toLowerCase().split(/[-_]/)[0] ?? '';
  return file[locale] ?? file[language] ?? file[FALLBACK_LOCALE];
}

/** `ko` → `한국어`, `en` → `English`: what `{{language}}` says in the rules. */
function languageName(locale: string): string {
  try {
    return new Intl.DisplayNames([locale], { type: 'language' }).of(locale) ?? locale;
  } catch {
    // Not a BCP 47 tag: say it as written rather than refuse to start over a label.
    return locale;
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
