/**
 * Prompt loading and composition: the real `prompts/` directory, and broken copies of it in temp
 * directories (missing files, invalid JSON, oversized prompts).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_PROMPTS_DIR,
  loadPrompts,
  PROMPT_BUDGET_CHARS,
  PROMPT_LOCALES,
  PROMPT_TASKS,
  PromptBudgetError,
  PromptFileError,
  type Prompts,
  type PromptTask,
} from '../src/prompts/load-prompts.js';
import { fillTemplate } from '../src/prompts/messages.js';
import { offeredTools } from '../src/prompts/offered-tools.js';
import { parseConfig } from '../src/config/load-config.js';
import type { Config } from '../src/config/config-schema.js';
import { chatRequest, classifierRequest, toolFormatRequest } from '../src/jobs/job-requests.js';
import type { ChatRequest } from '../src/actors/inference/types.js';

const PERSONA = { name: '이드', locale: 'ko' };

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A copy of the real prompts directory that a test may break. */
async function promptsCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-prompts-'));
  temps.push(dir);
  await cp(DEFAULT_PROMPTS_DIR, dir, { recursive: true });
  return dir;
}

describe('the real prompts directory', () => {
  it('composes every task as persona, then rules, then task, with placeholders filled', async () => {
    const prompts = await loadPrompts(DEFAULT_PROMPTS_DIR, PERSONA);
    const persona = (await readFile(join(DEFAULT_PROMPTS_DIR, 'ko', 'persona.txt'), 'utf8')).trim();
    const rules = (await readFile(join(DEFAULT_PROMPTS_DIR, 'ko', 'rules.txt'), 'utf8')).trim();
    for (const task of PROMPT_TASKS) {
      const prompt = prompts.systemPrompt(task);
      // Every tool is offered by default, so the tool marks (`@calendar `) are all removed.
      const taskText = (await readFile(join(DEFAULT_PROMPTS_DIR, 'ko', `${task}.txt`), 'utf8')).trim().replace(/^@[a-z]+ /gm, '');
      expect(prompt.length).toBeLessThanOrEqual(PROMPT_BUDGET_CHARS);
      expect(prompt).not.toMatch(/\{\{/);
      expect(prompt).toContain('이드');
      // The first line of each layer appears, in order; the task comes last.
      const values = { persona_name: '이드', locale: 'ko', language: '한국어' };
      const at = [persona, rules, taskText].map((layer) =>
        prompt.indexOf(fillTemplate(layer.split('\n')[0] ?? '', values)),
      );
      expect(at.every((index) => index >= 0)).toBe(true);
      expect(at).toEqual([...at].sort((a, b) => a - b));
      expect(prompt.endsWith(taskText.split('\n').at(-1) ?? '')).toBe(true);
    }
    // The language placeholder names the persona's locale in its own language.
    expect(prompts.systemPrompt('reasoner')).toContain('한국어');
  });

  it('names the persona from the config and states the tool contract in the classifier prompt', async () => {
    const prompts = await loadPrompts(DEFAULT_PROMPTS_DIR, { name: 'Aria', locale: 'en' });
    expect(prompts.systemPrompt('classifier')).toContain('Aria');
    expect(prompts.systemPrompt('classifier')).not.toContain('이드');
    expect(prompts.systemPrompt('reasoner')).toContain('English');
    const classifier = prompts.systemPrompt('classifier');
    for (const tool of [
      'calendar.today',
      'calendar.search(date_from, date_to)',
      'calendar.create_draft(title, date, time, end_time?, description?)',
      'email.search(query, days=7, folder?)',
      'email.read(uid)',
      'document.search(query)',
      'document.read(id)',
      'YYYY-MM-DD',
      'HH:MM',
    ]) {
      expect(classifier).toContain(tool);
    }
    // Only the user's own yes confirms a draft: the classifier is not offered the operation.
    expect(classifier).not.toContain('create_confirmed');
  });

  it('returns a frozen object with validated pre-route rules and messages per locale', async () => {
    const prompts = await loadPrompts(DEFAULT_PROMPTS_DIR, PERSONA);
    expect(Object.isFrozen(prompts)).toBe(true);
    expect(Object.isFrozen(prompts.preRoute.calendar.keywords)).toBe(true);
    expect(Object.isFrozen(prompts.messages('ko').status.load)).toBe(true);
    expect(prompts.preRoute.calendar.keywords).toContain('일정');
    expect(prompts.preRoute.email.folderHints[0]).toEqual({ hint: '회사', folder: 'Work' });

    expect(prompts.messages()).toBe(prompts.messages('ko'));
    expect(prompts.messages('ko-KR')).toBe(prompts.messages('ko'));
    expect(prompts.messages('fr')).toBe(prompts.messages('en'));
    expect(prompts.messages('en').tools.emailSendRefused).toMatch(/not supported/);
    // Runtime placeholders survive loading and are filled per use.
    expect(fillTemplate(prompts.messages('en').processing.usingTool, { tool: 'document' })).toBe(
      'Using the document tool…',
    );
  });

  it('uses the default directory and persona when called without arguments', async () => {
    const prompts = await loadPrompts();
    expect(prompts.persona).toEqual({ name: '이드', locale: 'ko' });
    expect(prompts.budgetChars).toBe(PROMPT_BUDGET_CHARS);
  });
});

describe('the tools the classifier is offered', () => {
  const toolLines = (prompt: string) => prompt.split('\n').filter((line) => /^- (calendar|email|document)\./.test(line) || /"tool":"(calendar|email|document)"/.test(line));

  it('are exactly the configured ones, in both languages, with no mark left', async () => {
    for (const locale of PROMPT_LOCALES) {
      const all = await loadPrompts(DEFAULT_PROMPTS_DIR, { name: 'Eid', locale });
      const documentsOnly = await loadPrompts(DEFAULT_PROMPTS_DIR, { name: 'Eid', locale }, { tools: ['document'] });
      const none = await loadPrompts(DEFAULT_PROMPTS_DIR, { name: 'Eid', locale }, { tools: [] });
      const names = (prompt: string) => new Set(toolLines(prompt).map((line) => /(calendar|email|document)/.exec(line)?.[1]));
      expect(names(all.systemPrompt('classifier'))).toEqual(new Set(['calendar', 'email', 'document']));
      expect(names(documentsOnly.systemPrompt('classifier'))).toEqual(new Set(['document']));
      expect(documentsOnly.systemPrompt('classifier')).not.toContain('pending_draft]가 있을 때');
      expect(documentsOnly.systemPrompt('classifier')).not.toContain('When [pending_draft] is present');
      expect(toolLines(none.systemPrompt('classifier'))).toEqual([]);
      for (const prompts of [all, documentsOnly, none]) expect(prompts.systemPrompt('classifier')).not.toMatch(/^@/m);
    }
  });

  it('follow the config: a calendar or a mailbox configured, document search switched off', () => {
    const tools = (section: Record<string, unknown>) => parseConfig({ tools: section }).tools;
    expect(offeredTools(tools({}))).toEqual(['document']);
    expect(offeredTools(tools({ documents: { enabled: false } }))).toEqual([]);
    // Only whether a section is set counts; its settings are the tools' own business (and tests).
    const set = {} as NonNullable<Config['tools']['calendar']> & NonNullable<Config['tools']['email']>;
    expect(offeredTools({ ...tools({}), calendar: set, email: set })).toEqual(['calendar', 'email', 'document']);
  });
});

describe('the labels the requests send', () => {
  /** Any `[name]` in a text: the requests' labels, and anything a prompt might call one. */
  const labelsIn = (text: string): string[] => [...text.matchAll(/\[([^[\]\n]+)\]/g)].map((match) => match[1] ?? '');

  /** The labels in the requests' messages (their values hold no brackets). */
  const sentLabels = (requests: ChatRequest[]): string[] => [
    ...new Set(requests.flatMap((request) => request.messages.flatMap((message) => labelsIn(String(message.content ?? ''))))),
  ].sort();

  const now = 'Friday 14 March 2025 at 10:00 (2025-03-14, Europe/Berlin)';
  const history = [
    { role: 'user' as const, content: 'hello' },
    { role: 'assistant' as const, content: 'hi there' },
  ];
  /**
   * Each task with the requests the job sends its prompt with, in every shape they take, built with an
   * empty system prompt (so only the request's own labels are in them); `react` is sent with none yet.
   */
  const systemPrompt = '';
  const REQUESTS: Record<PromptTask, ChatRequest[]> = {
    classifier: [false, true].flatMap((hasPendingDraft) =>
      [[], history].map((turns) => classifierRequest({ systemPrompt, now, history: turns, text: 'what is on today', hasPendingDraft })),
    ),
    reasoner: [chatRequest({ systemPrompt, now, history, text: 'explain attention' })],
    'tool-format': [toolFormatRequest({ systemPrompt, now, text: 'what is on today', payload: '{"events":0}' })],
    react: [],
  };

  /** Per task: labels its requests send that its prompt does not describe, and labels it names that no request sends. */
  const mismatches = (prompts: Prompts, locale = 'ko'): Record<string, { undescribed: string[]; neverSent: string[] }> => {
    const found: Record<string, { undescribed: string[]; neverSent: string[] }> = {};
    for (const task of PROMPT_TASKS) {
      const sent = sentLabels(REQUESTS[task]);
      const named = new Set(labelsIn(prompts.systemPrompt(task, locale)));
      const undescribed = sent.filter((label) => !named.has(label));
      const neverSent = [...named].filter((label) => !sent.includes(label)).sort();
      if (undescribed.length > 0 || neverSent.length > 0) found[task] = { undescribed, neverSent };
    }
    return found;
  };

  it('every label a request sends is described in the prompt it is sent with, and the prompt names no other', async () => {
    const real = await loadPrompts(DEFAULT_PROMPTS_DIR, PERSONA);
    for (const locale of PROMPT_LOCALES) expect(mismatches(real, locale), locale).toEqual({});
    // What the requests send today: a label renamed on one side only fails above.
    expect(sentLabels(REQUESTS.classifier)).toEqual(['history', 'message', 'now', 'pending_draft']);
    expect(sentLabels(REQUESTS['tool-format'])).toEqual(['now', 'request', 'tool_result']);
    expect(sentLabels(REQUESTS.reasoner)).toEqual(['now']);
  });

  it('finds a prompt that names the inputs otherwise than its request does (as classifier.txt did)', async () => {
    const dir = await promptsCopy();
    const classifier = await readFile(join(dir, 'ko', 'classifier.txt'), 'utf8');
    const renamed = classifier
      .replaceAll('[now]', '[현재 시각]')
      .replaceAll('[history]', '[대화 이력]')
      .replaceAll('[message]', '[현재 메시지]')
      .replaceAll('[pending_draft]', '[초안]');
    await writeFile(join(dir, 'ko', 'classifier.txt'), renamed);
    expect(mismatches(await loadPrompts(dir, PERSONA))).toEqual({
      classifier: { undescribed: ['history', 'message', 'now', 'pending_draft'], neverSent: ['대화 이력', '초안', '현재 메시지', '현재 시각'] },
    });
  });
});

describe('broken prompt directories', () => {
  it('refuses to start without rules.txt, naming the file', async () => {
    const dir = await promptsCopy();
    await rm(join(dir, 'ko', 'rules.txt'));
    const failure = loadPrompts(dir, PERSONA);
    await expect(failure).rejects.toBeInstanceOf(PromptFileError);
    await expect(failure).rejects.toThrow(join(dir, 'ko', 'rules.txt'));
    await expect(failure).rejects.toThrow(/missing/);
  });

  it('refuses a missing task file too', async () => {
    const dir = await promptsCopy();
    await rm(join(dir, 'ko', 'tool-format.txt'));
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/tool-format\.txt: the file is missing/);
  });

  it('starts quietly without persona.txt: the prompt begins with the rules', async () => {
    const dir = await promptsCopy();
    await rm(join(dir, 'ko', 'persona.txt'));
    const prompts = await loadPrompts(dir, PERSONA);
    const rules = (await readFile(join(dir, 'ko', 'rules.txt'), 'utf8')).trim().split('\n')[0] ?? '';
    expect(prompts.systemPrompt('classifier').startsWith(rules)).toBe(true);
  });

  it('refuses a composed prompt over its budget, naming the task and both sizes', async () => {
    const dir = await promptsCopy();
    await writeFile(join(dir, 'ko', 'reasoner.txt'), '생각하기. '.repeat(1_000));
    const failure = loadPrompts(dir, PERSONA);
    await expect(failure).rejects.toBeInstanceOf(PromptBudgetError);
    const error = await failure.catch((caught: unknown) => caught);
    if (!(error instanceof PromptBudgetError)) throw new Error('expected a PromptBudgetError');
    expect(error.task).toBe('reasoner');
    expect(error.budget).toBe(PROMPT_BUDGET_CHARS);
    expect(error.size).toBeGreaterThan(PROMPT_BUDGET_CHARS);
    expect(error.message).toContain('"reasoner"');
    expect(error.message).toContain(String(error.size));
    expect(error.message).toContain(String(PROMPT_BUDGET_CHARS));
  });

  it('takes the budget as a parameter', async () => {
    await expect(loadPrompts(DEFAULT_PROMPTS_DIR, PERSONA, { budgetChars: 500 })).rejects.toThrow(
      /"classifier" system prompt has \d+ characters, over its budget of 500/,
    );
  });

  it('refuses an unknown tool mark, naming the file and the known ones', async () => {
    const dir = await promptsCopy();
    await writeFile(join(dir, 'en', 'classifier.txt'), 'Tools\n@calender - calendar.today() : today');
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/classifier\.txt: unknown tool mark @calender \(known: @calendar, @email, @document\)/);
  });

  it('refuses an unknown placeholder, naming the file', async () => {
    const dir = await promptsCopy();
    await writeFile(join(dir, 'ko', 'react.txt'), '{{persona_nmae}}, search the documents.');
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/react\.txt: unknown placeholder \{\{persona_nmae\}\}/);
  });

  it('refuses pre-route.json that is not JSON or misses a rule', async () => {
    const dir = await promptsCopy();
    await writeFile(join(dir, 'pre-route.json'), '{ "calendar": ');
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/pre-route\.json: not valid JSON/);

    const rules = JSON.parse(await readFile(join(DEFAULT_PROMPTS_DIR, 'pre-route.json'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    delete rules['calendar']?.['tomorrow'];
    await writeFile(join(dir, 'pre-route.json'), JSON.stringify(rules));
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/pre-route\.json: invalid:[\s\S]*calendar\.tomorrow/);
  });

  it('refuses messages.json without English or with a misspelt key', async () => {
    const dir = await promptsCopy();
    const messages = JSON.parse(await readFile(join(DEFAULT_PROMPTS_DIR, 'messages.json'), 'utf8')) as Record<
      string,
      Record<string, Record<string, unknown>>
    >;
    const { en, ...koOnly } = messages;
    await writeFile(join(dir, 'messages.json'), JSON.stringify(koOnly));
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/messages\.json: invalid:[\s\S]*en/);

    const misspelt = structuredClone(messages);
    const processing = misspelt['ko']?.['processing'];
    if (processing === undefined || en === undefined) throw new Error('fixture changed');
    processing['analyzing'] = processing['analysing'];
    delete processing['analysing'];
    await writeFile(join(dir, 'messages.json'), JSON.stringify(misspelt));
    await expect(loadPrompts(dir, PERSONA)).rejects.toThrow(/analyzing/);
  });

  it('fills the persona name in messages', async () => {
    const dir = await promptsCopy();
    const messages = JSON.parse(await readFile(join(DEFAULT_PROMPTS_DIR, 'messages.json'), 'utf8')) as {
      en: { errors: { internal: string } };
    };
    messages.en.errors.internal = '{{persona_name}} hit an internal error.';
    await writeFile(join(dir, 'messages.json'), JSON.stringify(messages));
    const prompts = await loadPrompts(dir, { name: 'Aria', locale: 'en' });
    expect(prompts.messages().errors.internal).toBe('Aria hit an internal error.');
  });
});
