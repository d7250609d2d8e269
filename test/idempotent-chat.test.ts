/**
 * Idempotent chat (DESIGN §4): a `chat` that repeats a `clientMsgId` its owner used in the last 24 h gets
 * the same `accepted` (same jobId and conversationId) and starts nothing — no second message stored, no
 * second model request — and the connection gets the job's events by replay. Checked against the real
 * gateway over fake model servers, with two tokens (owners A and B).
 */
import type { InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerId } from '../src/transport/owner-id.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { checkContract, eventsOf, eventually, gate, sendChat, TERMINAL_EVENTS } from './helpers/frames.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './helpers/gateway-database.js';
import { startTestGateway, TestClient, type EventFrame, type Frame, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText, scriptModels } from './helpers/scripted-models.js';

const TOKEN_A = 'idempotent-alpha-Rk48sd';
const TOKEN_B = 'idempotent-bravo-Vn13qe';

const FIRST = 'remember this once please';
const OTHER_TEXT = 'a different text under the same clientMsgId';
const HELD = 'an answer that takes a while';
const TWICE = 'sent twice in a row';
const TWO_SOCKETS = 'sent from two connections at once';

let small: FakeBackend;
let large: FakeBackend;
let setup: GatewayDatabase | undefined;
let gateway: TestGateway | undefined;
let gatewayClosed = false;
const clients: TestClient[] = [];
const held = gate();
const submitted: Array<{ jobId: string; text: string }> = [];
/** The runtime's clock runs this far ahead of the store's (which stamps the jobs): the 24 h window. */
let clockAheadMs = 0;
const HOUR = 60 * 60 * 1000;

const classifierCalls = (text: string) => small.chatRequests.filter((r) => r.body !== null && classifiedText(r.body) === text).length;
const reasonerCalls = (text: string) => large.chatRequests.filter((r) => r.body !== null && lastUserText(r.body) === text).length;
const submits = (jobId: string) => submitted.filter((spec) => spec.jobId === jobId).length;

async function connect(token: string): Promise<TestClient> {
  const client = await TestClient.connect(gateway!.wsUrl, { authorization: `Bearer ${token}` });
  clients.push(client);
  return client;
}

/** Waits for the job's terminal event among the frames after `from` and returns the job's events there. */
async function eventsAfter(client: TestClient, jobId: string, from: number): Promise<EventFrame[]> {
  await client.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && TERMINAL_EVENTS.includes(String(f['event'])), 10_000, from);
  return eventsOf(client.frames.slice(from), jobId);
}

const chatFrame = (text: string, clientMsgId: string) => ({ type: 'chat', text, clientMsgId });

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }) });
  large.setDefault((body) => {
    const text = lastUserText(body);
    if (text === HELD) return held.promise.then(() => ({ content: ['held ', 'answer'] }));
    return { content: ['answer to ', text] };
  });
  setup = await prepareGatewayDatabase('pglite', { name: 'idempotent' });
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    dataDir: setup.gatewayOptions.dataDir!,
    config: { auth: { tokens: [TOKEN_A, TOKEN_B] } },
    deps: {
      now: () => new Date(Date.now() + clockAheadMs),
      inspect: (event: InspectionEvent) => {
        if (event.type !== '@xstate.event' || event.event.type !== 'submit') return;
        const spec = (event.event as { spec?: { jobId: string; text: string } }).spec;
        if (spec !== undefined) submitted.push({ jobId: spec.jobId, text: spec.text });
      },
    },
  });
}, 60_000);

afterAll(async () => {
  held.open();
  for (const client of clients) client.close();
  if (!gatewayClosed) await gateway?.close();
  await setup?.dispose();
  await small?.close();
  await large?.close();
});

describe('a repeated clientMsgId', () => {
  let first: Frame;
  let firstEvents: EventFrame[];

  it('on the same connection gets the same accepted, starts nothing and replays the events', async () => {
    const alice = await connect(TOKEN_A);
    first = await sendChat(alice, chatFrame(FIRST, 'same-1'), 'same-1');
    expect(first.type).toBe('accepted');
    const jobId = String(first['jobId']);
    firstEvents = await alice.finished(jobId);
    checkContract(firstEvents, 'done');

    const from = alice.frames.length;
    const repeat = await sendChat(alice, chatFrame(FIRST, 'same-1'), 'same-1');
    expect(repeat).toEqual(first);
    // The repeat hears the whole job again, event by event as it was first delivered.
    expect(await eventsAfter(alice, jobId, from)).toEqual(firstEvents);

    expect(classifierCalls(FIRST)).toBe(1);
    expect(reasonerCalls(FIRST)).toBe(1);
    expect(submits(jobId)).toBe(1);
  });

  it('from a new connection, after the first one closed, gets the same accepted and the replay', async () => {
    const jobId = String(first['jobId']);
    clients[0]!.close();
    const again = await connect(TOKEN_A);
    const from = again.frames.length;
    const repeat = await sendChat(again, chatFrame(FIRST, 'same-1'), 'same-1');
    expect(repeat).toEqual(first);
    expect(await eventsAfter(again, jobId, from)).toEqual(firstEvents);

    // What counts is the id: another text under it is the same chat, sent again.
    const from2 = again.frames.length;
    const otherText = await sendChat(again, chatFrame(OTHER_TEXT, 'same-1'), 'same-1');
    expect(otherText).toEqual(first);
    expect(await eventsAfter(again, jobId, from2)).toEqual(firstEvents);

    expect(classifierCalls(FIRST)).toBe(1);
    expect(classifierCalls(OTHER_TEXT)).toBe(0);
    expect(reasonerCalls(OTHER_TEXT)).toBe(0);
    expect(submits(jobId)).toBe(1);
  });

  it('from another owner is a new job', async () => {
    const bob = await connect(TOKEN_B);
    const theirs = await sendChat(bob, chatFrame(FIRST, 'same-1'), 'same-1');
    expect(theirs.type).toBe('accepted');
    expect(theirs['jobId']).not.toBe(first['jobId']);
    expect(theirs['conversationId']).not.toBe(first['conversationId']);
    checkContract(await bob.finished(String(theirs['jobId'])), 'done');
    expect(bob.answer(String(theirs['jobId']))).toBe(`answer to ${FIRST}`);
    expect(classifierCalls(FIRST)).toBe(2);
  });

  it('while the job is still running gets the same job, and its events live to the end', async () => {
    const alice = await connect(TOKEN_A);
    const accepted = await sendChat(alice, chatFrame(HELD, 'same-2'), 'same-2');
    expect(accepted.type).toBe('accepted');
    const jobId = String(accepted['jobId']);
    await eventually(() => reasonerCalls(HELD) === 1, 'the held question reaches the reasoner');

    const other = await connect(TOKEN_A);
    const repeat = await sendChat(other, chatFrame(HELD, 'same-2'), 'same-2');
    expect(repeat).toEqual(accepted);
    // It replays what the job said so far (the rewrite came before the reasoner was asked)…
    await other.waitFor((f) => f.type === 'event' && f['jobId'] === jobId && f['event'] === 'rewrite');
    expect(other.events(jobId).some((e) => TERMINAL_EVENTS.includes(e.event))).toBe(false);
    // …and follows it live to the end.
    held.open();
    const live = await alice.finished(jobId);
    const replayed = await other.finished(jobId);
    checkContract(live, 'done');
    expect(replayed).toEqual(live);
    expect(other.answer(jobId)).toBe('held answer');
    expect(classifierCalls(HELD)).toBe(1);
    expect(reasonerCalls(HELD)).toBe(1);
    expect(submits(jobId)).toBe(1);
  });

  it('sent twice back to back, without waiting, makes one job', async () => {
    const alice = await connect(TOKEN_A);
    const from = alice.frames.length;
    alice.send(chatFrame(TWICE, 'same-3'));
    alice.send(chatFrame(TWICE, 'same-3'));
    const repliesSoFar = () => alice.frames.slice(from).filter((f) => (f.type === 'accepted' || f.type === 'error') && f['clientMsgId'] === 'same-3');
    // Resolves once both chats have their reply (the predicate looks at all frames since `from`).
    await alice.waitFor(() => repliesSoFar().length === 2, 10_000, from);
    const replies = repliesSoFar();
    expect(replies[0]).toMatchObject({ type: 'accepted', clientMsgId: 'same-3' });
    expect(replies[1]).toEqual(replies[0]);
    const jobId = String(replies[0]!['jobId']);

    // After the second `accepted` the job's events come from the start, once, to the end.
    const secondAccepted = alice.frames.indexOf(replies[1]!);
    const afterSecond = await eventsAfter(alice, jobId, secondAccepted + 1);
    checkContract(afterSecond, 'done');
    // Whatever the first `accepted` was followed by meanwhile is the same events.
    for (const event of eventsOf(alice.frames.slice(from), jobId)) expect(event).toEqual(afterSecond[event.seq - 1]);
    expect(alice.answer(jobId)).not.toBe('');
    expect(classifierCalls(TWICE)).toBe(1);
    expect(reasonerCalls(TWICE)).toBe(1);
    expect(submits(jobId)).toBe(1);
  });

  it('sent at once from two connections of the same owner makes one job', async () => {
    const one = await connect(TOKEN_A);
    const two = await connect(TOKEN_A);
    const [a, b] = await Promise.all([sendChat(one, chatFrame(TWO_SOCKETS, 'same-4'), 'same-4'), sendChat(two, chatFrame(TWO_SOCKETS, 'same-4'), 'same-4')]);
    expect(a.type).toBe('accepted');
    expect(b).toEqual(a);
    const jobId = String(a['jobId']);
    const [eventsOne, eventsTwo] = await Promise.all([one.finished(jobId), two.finished(jobId)]);
    checkContract(eventsOne, 'done');
    expect(eventsTwo).toEqual(eventsOne);
    expect(classifierCalls(TWO_SOCKETS)).toBe(1);
    expect(submits(jobId)).toBe(1);
  });

  it('is the same chat for 24 hours, and a new one after', async () => {
    const alice = await connect(TOKEN_A);
    const WINDOW = 'within the window';
    const original = await sendChat(alice, chatFrame(WINDOW, 'same-5'), 'same-5');
    expect(original.type).toBe('accepted');
    checkContract(await alice.finished(String(original['jobId'])), 'done');

    clockAheadMs = 23 * HOUR;
    expect(await sendChat(alice, chatFrame(WINDOW, 'same-5'), 'same-5')).toEqual(original);
    expect(classifierCalls(WINDOW)).toBe(1);

    clockAheadMs = 25 * HOUR;
    const later = await sendChat(alice, chatFrame(WINDOW, 'same-5'), 'same-5');
    clockAheadMs = 0;
    expect(later.type).toBe('accepted');
    expect(later['jobId']).not.toBe(original['jobId']);
    checkContract(await alice.finished(String(later['jobId'])), 'done');
    expect(classifierCalls(WINDOW)).toBe(2);
  });

  it('stored one message and one job per owner and clientMsgId', async () => {
    for (const client of clients) client.close();
    await gateway!.close();
    gatewayClosed = true;
    const rows = await setup!.inspect(async (db) => ({
      messages: await db.selectFrom('messages').select(['content', 'conversation_id']).where('role', '=', 'user').execute(),
      jobs: await db.selectFrom('jobs').select(['id', 'owner', 'client_msg_id', 'status']).execute(),
    }));
    const userMessages = (text: string) => rows.messages.filter((m) => m.content === text);
    expect(userMessages(FIRST)).toHaveLength(2); // one of A's, one of B's
    expect(new Set(userMessages(FIRST).map((m) => m.conversation_id)).size).toBe(2);
    expect(userMessages(OTHER_TEXT)).toHaveLength(0);
    for (const text of [HELD, TWICE, TWO_SOCKETS]) expect(userMessages(text), text).toHaveLength(1);

    const jobsOf = (clientMsgId: string) => rows.jobs.filter((job) => job.client_msg_id === clientMsgId);
    expect(jobsOf('same-1').map((job) => job.owner).sort()).toEqual([ownerId(TOKEN_A), ownerId(TOKEN_B)].sort());
    for (const id of ['same-2', 'same-3', 'same-4']) {
      expect(jobsOf(id).map((job) => [job.owner, job.status]), id).toEqual([[ownerId(TOKEN_A), 'done']]);
    }
    expect(jobsOf('same-5')).toHaveLength(2); // the second after the window
    expect(rows.jobs).toHaveLength(7);
  });
});
