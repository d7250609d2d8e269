/**
 * History in order: when messages of one conversation are sent at once, both are stored before either
 * is answered (`u1 u2 a1 a2` in the table), yet each job must see the conversation up to its own
 * message — every earlier question followed by its answer, never a message sent after its own. The
 * real gateway over fake model servers; the fake holds answers back until the test lets them go, so the
 * interleaving is fixed, not a matter of timing.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/actors/store/create-database.js';
import { startFakeBackend, type FakeBackend, type FakeRequestBody } from './fakes/fake-openai-backend.js';
import { checkContract, gate, eventually } from './helpers/frames.js';
import { startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText, scriptModels } from './helpers/scripted-models.js';

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;
let gatewayClosed = false;
/** Conversations of the tests, for the check of the stored order. */
const conversations: Record<string, string> = {};
/** Answers held at the reasoner until their gate opens, by question. */
const holds = new Map<string, ReturnType<typeof gate>>();

const answerOf = (question: string) => `answer to ${question}`;

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }) });
  large.setDefault(async (body) => {
    const question = lastUserText(body);
    await holds.get(question)?.promise;
    return { content: ['answer ', `to ${question}`] };
  });
  gateway = await startTestGateway({ classifier: small, reasoner: large });
  client = await TestClient.connect(gateway.wsUrl);
}, 60_000);

afterAll(async () => {
  for (const hold of holds.values()) hold.open();
  client?.close();
  if (!gatewayClosed) await gateway?.close();
  if (gateway) rmSync(gateway.dataDir, { recursive: true, force: true });
  await small?.close();
  await large?.close();
});

function hold(question: string): () => void {
  const g = gate();
  holds.set(question, g);
  return g.open;
}

/** The history turns of the streamed (reasoner) request made for `question`. */
function reasonerHistory(question: string): Array<[string, string]> {
  const requests = large.chatRequests.filter((r) => r.body !== null && lastUserText(r.body) === question);
  expect(requests, `reasoner requests for "${question}"`).toHaveLength(1);
  return requests[0]!.body!.messages.slice(1, -1).map((m) => [m.role, String(m.content)]);
}

/** The `[history]` section of the classifier request made for `question`, as turns (none: []). */
function classifierHistory(question: string): Array<[string, string]> {
  const requests = small.chatRequests.filter((r) => r.body !== null && classifiedText(r.body) === question);
  expect(requests, `classifier requests for "${question}"`).toHaveLength(1);
  const body = requests[0]!.body as FakeRequestBody;
  const content = String(body.messages.at(-1)?.content ?? '');
  const match = /\[history\]\n([\s\S]*?)\n\n\[/.exec(content);
  if (match === null) return [];
  return match[1]!.split('\n').map((line) => {
    const colon = line.indexOf(': ');
    return [line.slice(0, colon), line.slice(colon + 2)];
  });
}

/** Both model requests of a job saw exactly `turns` as the conversation before its message. */
function expectHistory(question: string, turns: Array<[string, string]>): void {
  expect(reasonerHistory(question)).toEqual(turns);
  expect(classifierHistory(question)).toEqual(turns);
}

const turn = (question: string): Array<[string, string]> => [
  ['user', question],
  ['assistant', answerOf(question)],
];

describe('two messages sent at once in one conversation', () => {
  it('each job sees the conversation up to its own message; the next one sees q1 a1 q2 a2', async () => {
    const q1 = 'first question (slow)';
    const q2 = 'second question, sent before the first is answered';
    const q3 = 'third question, later';
    const release1 = hold(q1);

    const first = await client.chat(q1);
    conversations['sentAtOnce'] = first.conversationId;
    // Sent right after the first's `accepted`, while its answer is held at the reasoner.
    const second = await client.chat(q2, { conversationId: first.conversationId });
    expect(second.conversationId).toBe(first.conversationId);
    await eventually(() => large.chatRequests.some((r) => r.body !== null && lastUserText(r.body) === q1), 'the first question reaches the reasoner');
    expect(client.events(first.jobId).some((e) => e.event === 'done')).toBe(false);
    release1();

    checkContract(await client.finished(first.jobId), 'done');
    checkContract(await client.finished(second.jobId), 'done');
    expect(client.answer(first.jobId)).toBe(answerOf(q1));
    expect(client.answer(second.jobId)).toBe(answerOf(q2));

    // The first job: nothing before it, and never the second message.
    expectHistory(q1, []);
    for (const request of [...small.chatRequests, ...large.chatRequests]) {
      if (request.body === null) continue;
      if ((classifiedText(request.body) ?? lastUserText(request.body)) === q1) expect(JSON.stringify(request.body)).not.toContain(q2);
    }
    // The second job: the first question followed by its answer (stored after the second question).
    expectHistory(q2, turn(q1));

    const third = await client.chat(q3, { conversationId: first.conversationId });
    checkContract(await client.finished(third.jobId), 'done');
    expectHistory(q3, [...turn(q1), ...turn(q2)]);
  });

  it('also when both wait behind an earlier message, so both are stored before either job reads the history', async () => {
    const q0 = 'opening question (held)';
    const q1 = 'queued first';
    const q2 = 'queued second';
    const q3 = 'and one more afterwards';
    const release0 = hold(q0);

    const opening = await client.chat(q0);
    conversations['queued'] = opening.conversationId;
    await eventually(() => large.chatRequests.some((r) => r.body !== null && lastUserText(r.body) === q0), 'the opening question reaches the reasoner');
    // Both accepted (stored) while the opening job still runs: the conversation runs its jobs one at a
    // time, so the two read the history only after it, when the table holds u0 u1 u2 a0.
    const first = await client.chat(q1, { conversationId: opening.conversationId });
    const second = await client.chat(q2, { conversationId: opening.conversationId });
    expect(client.events(opening.jobId).some((e) => e.event === 'done')).toBe(false);
    release0();

    for (const job of [opening, first, second]) checkContract(await client.finished(job.jobId), 'done');
    expectHistory(q0, []);
    expectHistory(q1, turn(q0));
    expectHistory(q2, [...turn(q0), ...turn(q1)]);

    const later = await client.chat(q3, { conversationId: opening.conversationId });
    checkContract(await client.finished(later.jobId), 'done');
    expectHistory(q3, [...turn(q0), ...turn(q1), ...turn(q2)]);
  });

  it('the table holds them in the order they were stored, questions before answers: the jobs did not just read it back', async () => {
    client.close();
    await gateway.close({ keepData: true });
    gatewayClosed = true;
    const opened = await createDatabase({ dataDir: gateway.dataDir });
    try {
      const stored = async (conversationId: string) =>
        (await opened.db.selectFrom('messages').select(['role', 'content']).where('conversation_id', '=', conversationId).orderBy('id').execute()).map(
          (m) => `${m.role}: ${m.content}`,
        );
      // What each job saw was not simply the stored order.
      expect(await stored(conversations['sentAtOnce']!)).toEqual([
        'user: first question (slow)',
        'user: second question, sent before the first is answered',
        'assistant: answer to first question (slow)',
        'assistant: answer to second question, sent before the first is answered',
        'user: third question, later',
        'assistant: answer to third question, later',
      ]);
      expect((await stored(conversations['queued']!)).slice(0, 4)).toEqual([
        'user: opening question (held)',
        'user: queued first',
        'user: queued second',
        'assistant: answer to opening question (held)',
      ]);
    } finally {
      await opened.close();
    }
  });
});
