/**
 * Reads `prompts/` once at start and composes the system prompts (DESIGN §2, seed 003): persona →
 * rules → task, one string per task. The rules are load-bearing (the gateway must not answer without
 * them), so a missing rules file stops the start; the persona is flavour, so a missing one is quietly
 * empty. Every composed prompt must fit a character budget — small local models lose the end of long
 * system prompts, and the task part comes last — so an oversized prompt stops the start as well.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SwitchboardError } from '../errors.js';
import { PACKAGE_ROOT } from '../package-root.js';
import {
  FALLBACK_LOCALE,
  fillTemplate,
  messagesFileSchema,
  placeholdersIn,
  type Messages,
  type MessagesFile,
} from './messages.js';
import { preRouteRulesSchema, type PreRouteRules } from './pre-route-rules.js';

/** The languages with a prompt set of their own: `prompts/<locale>/`. Others use English's. */
export const PROMPT_LOCALES = ['ko', 'en'] as const;

/** The tasks a system prompt is composed for; each has `prompts/<locale>/<task>.txt`. */
export const PROMPT_TASKS = ['classifier', 'reasoner', 'tool-format', 'react'] as const;
export type PromptTask = (typeof PROMPT_TASKS)[number];

/** Default limit of one composed system prompt, in characters (UTF-16 code units). */
export const PROMPT_BUDGET_CHARS = 6_000;

/** `prompts/` of this checkout, found from the code rather than the working directory. */
export const DEFAULT_PROMPTS_DIR = join(PACKAGE_ROOT, 'prompts');

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
  /**
   * The tools that are configured (default: all of {@link PROMPT_TOOLS}). A prompt line that begins
   * with `@tool ` is that tool's: it is kept, without the mark, only when the tool is in this list, so
   * a model is never offered a tool that would only answer "not configured".
   */
  tools?: readonly PromptTool[];
}

/** The tools a prompt line may belong to (`@calendar …`). */
export const PROMPT_TOOLS = ['calendar', 'email', 'document'] as const;
export type PromptTool = (typeof PROMPT_TOOLS)[number];

/** `@tool ` at the start of a line: the line belongs to that tool. */
const TOOL_LINE = /^@([a-z]+) /;

/**
 * `text` with the lines of tools not in `tools` dropped and the marks of the others removed. An
 * unknown tool name is an error in `file`.
 */
function keepToolLines(file: string, text: string, tools: ReadonlySet<string>): string {
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    const mark = TOOL_LINE.exec(line);
    if (mark === null) {
      kept.push(line);
      continue;
    }
    const tool = mark[1]!;
    if (!(PROMPT_TOOLS as readonly string[]).includes(tool)) {
      throw new PromptFileError(file, `unknown tool mark @${tool} (known: ${PROMPT_TOOLS.map((name) => `@${name}`).join(', ')})`);
    }
    if (tools.has(tool)) kept.push(line.slice(mark[0].length));
  }
  return kept.join('\n');
}

/** Everything under `prompts/`, validated and composed. Frozen. */
export interface Prompts {
  readonly persona: Readonly<PersonaSettings>;
  /** The keyword rules for `preRoute`. */
  readonly preRoute: PreRouteRules;
  readonly budgetChars: number;
  /**
   * The composed system prompt of `task` (persona → rules → task, placeholders filled) for `locale`
   * (default: the persona's): that language's prompt set (`ko-KR` → `ko`), else English's, telling the
   * model `locale`'s language.
   */
  systemPrompt(task: PromptTask, locale?: string): string;
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
 * Loads and checks `dir` (default: this checkout's `prompts/`): for each of {@link PROMPT_LOCALES} a
 * folder with persona.txt (optional), rules.txt and one file per task; pre-route.json and messages.json
 * beside them. Throws {@link PromptFileError} or {@link PromptBudgetError}; call it once at start and let
 * a throw stop the start.
 */
export async function loadPrompts(
  dir: string = DEFAULT_PROMPTS_DIR,
  persona: Readonly<PersonaSettings> = DEFAULT_PERSONA,
  options: LoadPromptsOptions = {},
): Promise<Prompts> {
  const budgetChars = options.budgetChars ?? PROMPT_BUDGET_CHARS;
  const tools = new Set<string>(options.tools ?? PROMPT_TOOLS);
  const values = { persona_name: persona.name, locale: persona.locale, language: languageName(persona.locale) };

  // Each folder's texts, read once.
  const sets = new Map<string, PromptSet>();
  for (const locale of PROMPT_LOCALES) sets.set(locale, await readPromptSet(join(dir, locale)));

  /** The composed prompts for `locale`: its folder's set (or English's), its language named. */
  const composedFor = new Map<string, ReadonlyMap<PromptTask, string>>();
  const compose = (locale: string): ReadonlyMap<PromptTask, string> => {
    const cached = composedFor.get(locale);
    if (cached) return cached;
    const set = sets.get(promptLocaleOf(locale))!;
    const localeValues = { persona_name: persona.name, locale, language: languageName(locale) };
    const layers = [fill(set.personaFile, set.persona, localeValues), fill(set.rulesFile, set.rules, localeValues)];
    const composed = new Map<PromptTask, string>();
    for (const task of PROMPT_TASKS) {
      const { file, text } = set.tasks.get(task)!;
      const prompt = [...layers, fill(file, keepToolLines(file, text, tools), localeValues)].filter((part) => part !== '').join('\n\n');
      composed.set(task, prompt);
    }
    composedFor.set(locale, composed);
    return composed;
  };
  // Every set, and the persona's locale, composed and checked now: a bad file stops the start, not a job.
  for (const locale of [...PROMPT_LOCALES, persona.locale]) {
    for (const [task, prompt] of compose(locale)) {
      if (prompt.length > budgetChars) throw new PromptBudgetError(task, prompt.length, budgetChars);
    }
  }

  const preRoute = deepFreeze(await readJson(dir, 'pre-route.json', preRouteRulesSchema));
  const messagesFile = deepFreeze(fillStrings(await readJson(dir, 'messages.json', messagesFileSchema), values));

  const prompts: Prompts = {
    persona: Object.freeze({ name: persona.name, locale: persona.locale }),
    preRoute,
    budgetChars,
    systemPrompt(task, locale = persona.locale) {
      const prompt = compose(locale).get(task);
      // Only reachable by casting around the type: every task was composed above.
      if (prompt === undefined) throw new RangeError(`unknown prompt task "${String(task)}"`);
      return prompt;
    },
    messages: (locale = persona.locale) => pickLocale(messagesFile, locale),
  };
  return Object.freeze(prompts);
}

/** One language's prompt texts, as read, with the files they came from (for errors). */
interface PromptSet {
  persona: string;
  personaFile: string;
  rules: string;
  rulesFile: string;
  tasks: ReadonlyMap<PromptTask, { file: string; text: string }>;
}

async function readPromptSet(folder: string): Promise<PromptSet> {
  const tasks = new Map<PromptTask, { file: string; text: string }>();
  for (const task of PROMPT_TASKS) tasks.set(task, { file: join(folder, `${task}.txt`), text: await readText(folder, `${task}.txt`) });
  return {
    persona: await readText(folder, 'persona.txt', { optional: true }),
    personaFile: join(folder, 'persona.txt'),
    rules: await readText(folder, 'rules.txt'),
    rulesFile: join(folder, 'rules.txt'),
    tasks,
  };
}

/** The prompt folder for `locale`: its own (`ko-KR` → `ko`), else English's. */
export function promptLocaleOf(locale: string): (typeof PROMPT_LOCALES)[number] {
  const language = locale.toLowerCase().split(/[-_]/)[0] ?? '';
  return (PROMPT_LOCALES as readonly string[]).includes(language) ? (language as (typeof PROMPT_LOCALES)[number]) : 'en';
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
