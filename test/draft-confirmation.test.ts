/**
 * Only the user's own yes-words confirm a calendar draft. The job machine is driven directly, with its
 * own actor slots provided as the runtime provides them: `loadConversation` returns a history and (or
 * not) a pending draft, `infer` answers the classifier with the JSON a test chooses, and `runTool`,
 * `saveDraft` and `clearDraft` record their calls. A classifier that answers `create_confirmed` — in
 * any spelling the lenient parser accepts — writes nothing: the job answers with the confirm prompt
 * (a draft waits) or the no-draft sentence. The user's "네"/"yes" runs `calendar.create_confirmed` once
 * with the stored draft's params, then clears the draft.
 */
import { createActor, fromCallback, fromPromise, waitFor } from 'xstate';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { BackendReply } from '../src/machines/backend-protocol.js';
import {
  jobMachine,
  type DraftInput,
  type InferInput,
  type JobMessageKey,
  type JobSinkEvent,
  type ToolInput,
  type ToolOutcome,
} from '../src/machines/job-machine.js';
import { loadPrompts } from '../src/prompts/load-prompts.js';
import { testToolkit } from './helpers/job-toolkit.js';

const prompts = await loadPrompts(undefined, { name: 'Eid', locale: 'en' });
const sentences = prompts.messages('en');
const SENTENCE: Partial<Record<JobMessageKey, string>> = {
  confirmPrompt: sentences.draft.confirm,
  noDraft: sentences.draft.noDraft,
  draftCancelled: sentences.draft.cancelled,
};
const toolkit = testToolkit(prompts, (key) => SENTENCE[key] ?? key);

/** The draft the previous turn stored and showed the user. */
const DRAFT = { title: 'Dentist', date: '2026-11-24', time: '10:00', end_time: '11:00' };
const HISTORY = [
  { role: 'user' as const, content: 'put a dentist appointment on Tuesday at 10' },
  { role: 'assistant' as const, content: `Dentist, 2026-11-24 10:00–11:00\n\n${sentences.draft.confirm}` },
];
const CREATED: ToolOutcome = { ok: true, data: { id: 'event-1', ...DRAFT }, summary: 'Added Dentist on 2026-11-24 at 10:00.', payload: '{}', sources: [] };

interface JobRun {
  /** Every call to an actor slot, in order, by name. */
  calls: Array<{ actor: string; input: unknown }>;
  runTool: ToolInput[];
  clearDraft: DraftInput[];
  saveDraft: unknown[];
  infer: InferInput[];
  events: JobSinkEvent[];
  answer: string;
  terminal: string | undefined;
}

const isClassifierRequest = (input: InferInput) => input.kind === 'complete' && String(input.request.messages.at(-1)?.content ?? '').startsWith('[now]');

/** Runs one job to its end: `text` from the user, `draft` pending or not, the classifier answering `classifierSays`. */
async function runJob(options: { text: string; draft: Record<string, unknown> | null; classifierSays?: string }): Promise<JobRun> {
  const run: JobRun = { calls: [], runTool: [], clearDraft: [], saveDraft: [], infer: [], events: [], answer: '', terminal: undefined };
  const record = (actor: string, input: unknown) => run.calls.push({ actor, input });
  const machine = jobMachine.provide({
    actors: {
      loadConversation: fromPromise(async ({ input }) => {
        record('loadConversation', input);
        return { history: HISTORY, draft: options.draft === null ? null : { ...options.draft } };
      }),
      infer: fromCallback<BackendReply, InferInput>(({ input, sendBack }) => {
        record('infer', input);
        run.infer.push(input);
        const requestId = `r${run.infer.length}`;
        const timing = { queuedMs: 0, firstByteMs: 1, totalMs: 1 };
        const done = (content: string): BackendReply => ({ type: 'infer.done', requestId, result: { content, toolCalls: [], finishReason: 'stop' }, timing });
        queueMicrotask(() => {
          if (isClassifierRequest(input)) {
            if (options.classifierSays === undefined) throw new Error('the classifier was asked, but the test gave it no answer');
            sendBack(done(options.classifierSays));
          } else if (input.kind === 'stream') {
            sendBack({ type: 'infer.chunk', requestId, text: 'a streamed answer' });
            sendBack(done('a streamed answer'));
          } else {
            sendBack(done('phrased'));
          }
        });
      }),
      runTool: fromPromise(async ({ input }) => {
        record('runTool', input);
        run.runTool.push(input);
        return CREATED;
      }),
      saveDraft: fromPromise(async ({ input }) => {
        record('saveDraft', input);
        run.saveDraft.push(input);
      }),
      clearDraft: fromPromise(async ({ input }) => {
        record('clearDraft', input);
        run.clearDraft.push(input);
      }),
      describeStatus: fromPromise(async () => 'status'),
    },
  });
  const sink = createActor(
    fromCallback<JobSinkEvent>(({ receive }) => {
      receive((event) => run.events.push(event));
    }),
  ).start();
  const supervisor = createActor(fromCallback(() => undefined)).start();
  const job = createActor(machine, {
    input: {
      jobId: 'job-1',
      conversationId: 'conversation-1',
      text: options.text,
      mode: 'auto',
      roles: { classifier: 'small', reasoner: 'large' },
      modeBackend: null,
      fallbackToClassifier: true,
      sink,
      toolkit,
      supervisor,
    },
  });
  job.start();
  onTestFinished(() => {
    job.stop();
    sink.stop();
    supervisor.stop();
  });
  await waitFor(job, (snapshot) => snapshot.status === 'done', { timeout: 5_000 });
  const deadline = Date.now() + 5_000;
  while (!run.events.some((e) => ['done', 'error', 'cancelled'].includes(e.payload.event))) {
    if (Date.now() > deadline) throw new Error('the job never published its terminal event');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  job.stop();
  sink.stop();
  supervisor.stop();
  run.answer = run.events
    .filter((e) => e.payload.event === 'result')
    .map((e) => String((e.payload.data as Record<string, unknown>)['content']))
    .join('');
  run.terminal = run.events.at(-1)?.payload.event;
  return run;
}

/** Classifier outputs that all mean "tools: calendar.create_confirmed" to the lenient parser. */
const MODEL_CONFIRMATIONS: Record<string, string> = {
  'the plain JSON': JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_confirmed' }),
  'with the draft as params': JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_confirmed', params: DRAFT }),
  'with other params': JSON.stringify({ action: 'tools', tool: 'calendar', operation: 'create_confirmed', params: { title: 'Something else', date: '2027-01-01', time: '09:00' } }),
  'as tool "calendar.create_confirmed"': JSON.stringify({ action: 'tools', tool: 'calendar.create_confirmed', params: DRAFT }),
  'as action "Tool", padded, in a code fence': '```json\n{"action":"Tool","tool":" calendar ","operation":" create_confirmed ","params":"{}"}\n```',
  'after some thinking': '<think>the user wants it</think>Sure! {"action":"tools","tool":"calendar","operation":"create_confirmed","params":{}}',
};

/** Text a classifier must judge (no pre-route rule matches it, with or without a draft). */
const JUDGED = 'go ahead and do it for me';

describe('a draft is confirmed only by the user', () => {
  it('the test message goes to the classifier, and the yes-words are pre-routed only while a draft waits', () => {
    const now = toolkit.now();
    expect(toolkit.preRoute(JUDGED, true, now)).toBeNull();
    expect(toolkit.preRoute(JUDGED, false, now)).toBeNull();
    for (const yes of ['네', 'yes', 'Yes.', 'ok', '확인']) {
      expect(toolkit.preRoute(yes, true, now)).toEqual({ action: 'confirmDraft' });
      expect(toolkit.preRoute(yes, false, now)).not.toEqual({ action: 'confirmDraft' });
    }
    for (const output of Object.values(MODEL_CONFIRMATIONS)) {
      expect(toolkit.parseClassification(output)).toMatchObject({ action: 'tools', operation: 'create_confirmed' });
    }
  });

  describe('the classifier answering create_confirmed while a draft waits writes nothing and asks the user', () => {
    for (const [name, output] of Object.entries(MODEL_CONFIRMATIONS)) {
      it(name, async () => {
        const run = await runJob({ text: JUDGED, draft: DRAFT, classifierSays: output });
        expect(run.runTool).toEqual([]);
        expect(run.clearDraft).toEqual([]);
        expect(run.saveDraft).toEqual([]);
        // One request, to the classifier, which was told a draft waits; no model was asked to phrase anything.
        expect(run.infer).toHaveLength(1);
        expect(isClassifierRequest(run.infer[0]!)).toBe(true);
        expect(String(run.infer[0]!.request.messages.at(-1)?.content)).toContain('[pending_draft]');
        expect(run.answer).toBe(sentences.draft.confirm);
        expect(run.terminal).toBe('done');
        expect(run.events.at(-1)?.outcome).toMatchObject({ status: 'done', answer: sentences.draft.confirm });
      });
    }
  });

  describe('the classifier answering create_confirmed without a draft writes nothing and says there is none', () => {
    for (const [name, output] of Object.entries(MODEL_CONFIRMATIONS)) {
      it(name, async () => {
        const run = await runJob({ text: JUDGED, draft: null, classifierSays: output });
        expect(run.runTool).toEqual([]);
        expect(run.clearDraft).toEqual([]);
        expect(run.saveDraft).toEqual([]);
        expect(run.answer).toBe(sentences.draft.noDraft);
        expect(run.terminal).toBe('done');
      });
    }
  });

  it('a "yes" the user did not say alone (a longer sentence) goes to the classifier, and its create_confirmed writes nothing', async () => {
    const run = await runJob({ text: 'yes and also tell me a joke', draft: DRAFT, classifierSays: MODEL_CONFIRMATIONS['the plain JSON'] });
    expect(run.infer.filter(isClassifierRequest)).toHaveLength(1);
    expect(run.runTool).toEqual([]);
    expect(run.clearDraft).toEqual([]);
    expect(run.answer).toBe(sentences.draft.confirm);
  });

  it('the classifier naming the action confirmDraft is no confirmation either', async () => {
    const run = await runJob({ text: JUDGED, draft: DRAFT, classifierSays: JSON.stringify({ action: 'confirmDraft' }) });
    expect(run.runTool).toEqual([]);
    expect(run.clearDraft).toEqual([]);
    expect(run.terminal).toBe('done');
  });

  it('"네" without a draft is no confirmation: the classifier is asked, and its create_confirmed gets the no-draft sentence', async () => {
    const run = await runJob({ text: '네', draft: null, classifierSays: MODEL_CONFIRMATIONS['the plain JSON'] });
    expect(run.infer.filter(isClassifierRequest)).toHaveLength(1);
    expect(run.runTool).toEqual([]);
    expect(run.clearDraft).toEqual([]);
    expect(run.answer).toBe(sentences.draft.noDraft);
  });

  for (const yes of ['네', 'yes', 'Yes.', 'ok', '확인']) {
    it(`the user's own "${yes}" with a draft creates the stored draft once, then clears it`, async () => {
      const run = await runJob({ text: yes, draft: DRAFT });
      // No model decided anything: the classifier was never asked.
      expect(run.infer).toEqual([]);
      expect(run.runTool).toEqual([{ jobId: 'job-1', tool: 'calendar', operation: 'create_confirmed', params: DRAFT }]);
      expect(run.clearDraft).toEqual([{ jobId: 'job-1', conversationId: 'conversation-1' }]);
      expect(run.saveDraft).toEqual([]);
      expect(run.calls.map((c) => c.actor)).toEqual(['loadConversation', 'runTool', 'clearDraft']);
      expect(run.answer).toBe(CREATED.ok ? CREATED.summary : '');
      expect(run.terminal).toBe('done');
    });
  }

  it('the user\'s "no" with a draft clears it without creating anything', async () => {
    const run = await runJob({ text: 'no', draft: DRAFT });
    expect(run.infer).toEqual([]);
    expect(run.runTool).toEqual([]);
    expect(run.clearDraft).toEqual([{ jobId: 'job-1', conversationId: 'conversation-1' }]);
    expect(run.answer).toBe(sentences.draft.cancelled);
    expect(run.terminal).toBe('done');
  });
});
