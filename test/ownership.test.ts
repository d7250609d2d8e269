/**
 * Ownership (DESIGN §4): with `auth.tokens` configured, conversations and jobs belong to the token that
 * made them, stored as an owner id (`ownerId(token)`), never as the token. Two clients with tokens A and
 * B share one real gateway (runtime, store, WebSocket) over two fake model servers: B cannot read,
 * continue, follow or cancel anything of A's, and cannot even tell A's conversations and jobs from ones
 * that do not exist. Runs on PGlite and, with TEST_DATABASE_URL, on PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import type { InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerId } from '../src/transport/owner-id.js';
import { startFakeBackend, type FakeBackend, type FakeRequestBody } from './fakes/fake-openai-backend.js';
import { testDialects } from './helpers/databases.js';
import { checkContract, eventsOf, eventually, gate, replay, roundTrip, sendChat, sendForError } from './helpers/frames.js';
import { prepareGatewayDatabase, rowsAsText, tableNames, type GatewayDatabase } from './helpers/gateway-database.js';
import { startTestGateway, TestClient, type Frame, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText, scriptModels } from './helpers/scripted-models.js';

const TOKEN_A = 'owner-alpha-token-Hq27xKw';
const TOKEN_B = 'owner-bravo-token-Lm90pZr';
/** Words only A ever writes or is answered with: none may reach B or B's model requests. */
const A_MARK = 'Quokka7731';

const A_FIRST = `alpha first question ${A_MARK}`;
const A_FIRST_ANSWER = `alpha first answer ${A_MARK}`;
const A_SLOW = `alpha slow question ${A_MARK}`;
const A_SLOW_ANSWER = `alpha slow answer ${A_MARK}`;
const B_INTRUDES = 'bravo tries to continue that conversation';
const B_GUESSES = 'bravo guesses a shared conversation';
const B_OWN = 'bravo own question';
const B_OWN_AGAIN = 'bravo own question again';

/** The text a model request was made for (the classifier's `[message]` or the last user message). */
const requestText = (body: FakeRequestBody): string => classifiedText(body) ?? lastUserText(body);
/** The history turns of a streamed chat request: everything between the system prompt and the message. */
const streamHistory = (body: FakeRequestBody) => body.messages.slice(1, -1).map((m) => [m.role, m.content]);

for (const dialect of testDialects()) {
  describe(`ownership between two tokens (${dialect})`, () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let setup: GatewayDatabase | undefined;
    let gateway: TestGateway | undefined;
    let gatewayClosed = false;
    let alice: TestClient;
    let bob: TestClient;
    const slowAnswer = gate();
    /** Every job handed to the supervisor, seen through the inspector. */
    const submitted: Array<{ jobId: string; conversationId: string; text: string }> = [];
    const ids = { aliceConversation: '', aliceFirstJob: '', aliceSlowJob: '', bobConversation: '' };

    const allRequests = () => [...small.chatRequests, ...large.chatRequests].filter((r) => r.body !== null).map((r) => r.body!);

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }) });
      // A's slow question is held at the reasoner until the test opens the gate: its job is live meanwhile.
      large.setDefault((body) => {
        const text = lastUserText(body);
        if (text === A_SLOW) return slowAnswer.promise.then(() => ({ content: ['alpha slow ', `answer ${A_MARK}`] }));
        if (text === A_FIRST) return { content: ['alpha first ', `answer ${A_MARK}`] };
        return { content: [`answer to ${text}`] };
      });
      setup = await prepareGatewayDatabase(dialect, { name: 'ownership' });
      gateway = await startTestGateway({
        classifier: small,
        reasoner: large,
        ...(setup.gatewayOptions.dataDir === undefined ? {} : { dataDir: setup.gatewayOptions.dataDir }),
        config: { ...setup.gatewayOptions.config, auth: { tokens: [TOKEN_A, TOKEN_B] } },
        deps: {
          inspect: (event: InspectionEvent) => {
            if (event.type !== '@xstate.event' || event.event.type !== 'submit') return;
            const spec = (event.event as { spec?: { jobId: string; conversationId: string; text: string } }).spec;
            if (spec !== undefined) submitted.push({ jobId: spec.jobId, conversationId: spec.conversationId, text: spec.text });
          },
        },
      });
      // A by header, B by query parameter: both ways of presenting a token.
      alice = await TestClient.connect(gateway.wsUrl, { authorization: `Bearer ${TOKEN_A}` });
      bob = await TestClient.connect(`${gateway.wsUrl}?token=${encodeURIComponent(TOKEN_B)}`);
    }, 60_000);

    afterAll(async () => {
      slowAnswer.open();
      alice?.close();
      bob?.close();
      if (!gatewayClosed) await gateway?.close();
      await setup?.dispose();
      await small?.close();
      await large?.close();
    });

    it('A chats and is answered', async () => {
      const accepted = await sendChat(alice, { type: 'chat', text: A_FIRST, clientMsgId: 'a-1' }, 'a-1');
      expect(accepted.type).toBe('accepted');
      ids.aliceFirstJob = String(accepted['jobId']);
      ids.aliceConversation = String(accepted['conversationId']);
      checkContract(await alice.finished(ids.aliceFirstJob), 'done');
      expect(alice.answer(ids.aliceFirstJob)).toBe(A_FIRST_ANSWER);
    });

    it("B's chat naming A's conversation, or one that does not exist, is unknown_conversation and runs nothing", async () => {
      const requestsBefore = allRequests().length;
      const intrusion = await sendChat(bob, { type: 'chat', text: B_INTRUDES, conversationId: ids.aliceConversation, clientMsgId: 'b-1' }, 'b-1');
      expect(intrusion).toMatchObject({ type: 'error', code: 'unknown_conversation', clientMsgId: 'b-1' });
      const guess = await sendChat(bob, { type: 'chat', text: B_GUESSES, conversationId: 'shared', clientMsgId: 'b-2' }, 'b-2');
      expect(guess).toMatchObject({ type: 'error', code: 'unknown_conversation', clientMsgId: 'b-2' });

      // A conversation of A's and one that does not exist look the same to B: nothing to learn from.
      const strip = ({ clientMsgId: _, ...rest }: Frame) => rest;
      expect(strip(intrusion)).toEqual(strip(guess));
      const said = JSON.stringify(intrusion);
      for (const secret of [ids.aliceConversation, ids.aliceFirstJob, A_MARK, ownerId(TOKEN_A), TOKEN_A, 'alpha']) {
        expect(said).not.toContain(secret);
      }

      // Nothing ran: no job was handed to the supervisor, no model was asked, nothing was accepted.
      await roundTrip(bob);
      expect(submitted.filter((spec) => spec.text === B_INTRUDES || spec.text === B_GUESSES)).toEqual([]);
      expect(allRequests().length).toBe(requestsBefore);
      expect(bob.frames.filter((f) => f.type === 'accepted' || f.type === 'event')).toEqual([]);
    });

    it('A too gets unknown_conversation for a conversation that does not exist', async () => {
      const reply = await sendChat(alice, { type: 'chat', text: 'alpha guesses', conversationId: 'shared', clientMsgId: 'a-guess' }, 'a-guess');
      expect(reply).toMatchObject({ type: 'error', code: 'unknown_conversation', clientMsgId: 'a-guess' });
    });

    it("B can neither follow nor cancel A's job, live or ended, and cannot tell it from a job that does not exist", async () => {
      const nobody = randomUUID();
      const strip = ({ clientMsgId: _, ...rest }: Frame) => rest;

      // Ended.
      const subscribeEnded = await sendForError(bob, { type: 'subscribe', jobId: ids.aliceFirstJob, afterSeq: 0 });
      const cancelEnded = await sendForError(bob, { type: 'cancel', jobId: ids.aliceFirstJob });
      const subscribeNobody = await sendForError(bob, { type: 'subscribe', jobId: nobody, afterSeq: 0 });
      const cancelNobody = await sendForError(bob, { type: 'cancel', jobId: nobody });
      for (const frame of [subscribeEnded, cancelEnded]) expect(frame).toMatchObject({ type: 'error', code: 'unknown_job' });
      expect(strip(subscribeEnded)).toEqual(strip(subscribeNobody));
      expect(strip(cancelEnded)).toEqual(strip(cancelNobody));

      // Live: A's next message in its conversation waits at the reasoner until the gate opens.
      const accepted = await sendChat(alice, { type: 'chat', text: A_SLOW, conversationId: ids.aliceConversation, clientMsgId: 'a-2' }, 'a-2');
      expect(accepted).toMatchObject({ type: 'accepted', conversationId: ids.aliceConversation });
      ids.aliceSlowJob = String(accepted['jobId']);
      await eventually(() => large.chatRequests.some((r) => r.body !== null && lastUserText(r.body) === A_SLOW), "A's slow question reaches the reasoner");
      expect(alice.events(ids.aliceSlowJob).some((e) => ['done', 'error', 'cancelled'].includes(e.event))).toBe(false);

      const cancelLive = await sendForError(bob, { type: 'cancel', jobId: ids.aliceSlowJob });
      const subscribeLive = await sendForError(bob, { type: 'subscribe', jobId: ids.aliceSlowJob, afterSeq: 0 });
      expect(strip(cancelLive)).toEqual(strip(cancelNobody));
      expect(strip(subscribeLive)).toEqual(strip(subscribeNobody));

      // B's cancel did nothing: A's job runs to its answer.
      slowAnswer.open();
      const events = await alice.finished(ids.aliceSlowJob);
      checkContract(events, 'done');
      expect(alice.answer(ids.aliceSlowJob)).toBe(A_SLOW_ANSWER);
      await roundTrip(bob);
      expect(bob.frames.filter((f) => f.type === 'event' || f.type === 'accepted')).toEqual([]);
    });

    it('A continues its own conversation and sees exactly its own turns; A follows its own jobs from a new connection', async () => {
      const slowRequest = large.chatRequests.find((r) => r.body !== null && lastUserText(r.body) === A_SLOW);
      expect(streamHistory(slowRequest!.body!)).toEqual([
        ['user', A_FIRST],
        ['assistant', A_FIRST_ANSWER],
      ]);
      const again = await TestClient.connect(gateway!.wsUrl, { authorization: `Bearer ${TOKEN_A}` });
      try {
        const first = await replay(again, ids.aliceFirstJob);
        checkContract(first, 'done');
        expect(first).toEqual(eventsOf(alice.frames, ids.aliceFirstJob));
      } finally {
        again.close();
      }
    });

    it("B's conversations are B's: B continues them, A cannot", async () => {
      const own = await sendChat(bob, { type: 'chat', text: B_OWN, clientMsgId: 'b-3' }, 'b-3');
      expect(own.type).toBe('accepted');
      ids.bobConversation = String(own['conversationId']);
      checkContract(await bob.finished(String(own['jobId'])), 'done');
      const again = await sendChat(bob, { type: 'chat', text: B_OWN_AGAIN, conversationId: ids.bobConversation, clientMsgId: 'b-4' }, 'b-4');
      expect(again).toMatchObject({ type: 'accepted', conversationId: ids.bobConversation });
      checkContract(await bob.finished(String(again['jobId'])), 'done');

      const intrusion = await sendChat(alice, { type: 'chat', text: 'alpha intrudes', conversationId: ids.bobConversation, clientMsgId: 'a-3' }, 'a-3');
      expect(intrusion).toMatchObject({ type: 'error', code: 'unknown_conversation' });

      // No model request made for B carried anything of A's.
      const forBob = allRequests().filter((body) => requestText(body).startsWith('bravo'));
      expect(forBob.length).toBeGreaterThanOrEqual(4); // two classifier and two reasoner requests
      for (const body of forBob) expect(JSON.stringify(body)).not.toContain(A_MARK);
      const bobSecond = large.chatRequests.find((r) => r.body !== null && lastUserText(r.body) === B_OWN_AGAIN);
      expect(streamHistory(bobSecond!.body!)).toEqual([
        ['user', B_OWN],
        ['assistant', `answer to ${B_OWN}`],
      ]);
      // And B never received a frame that mentions A's words.
      expect(JSON.stringify(bob.frames)).not.toContain(A_MARK);
    });

    it('stores owner ids, never a token: no table holds either token anywhere', async () => {
      alice.close();
      bob.close();
      await gateway!.close();
      gatewayClosed = true;

      const found = await setup!.inspect(async (db) => {
        const tables = await tableNames(db);
        const rows: Record<string, string[]> = {};
        for (const table of tables) rows[table] = await rowsAsText(db, table);
        return {
          tables,
          rows,
          jobs: await db.selectFrom('jobs').select(['id', 'owner', 'conversation_id', 'client_msg_id']).execute(),
          conversations: await db.selectFrom('conversations').select(['id', 'owner']).execute(),
          aliceMessages: await db
            .selectFrom('messages')
            .select(['role', 'content'])
            .where('conversation_id', '=', ids.aliceConversation)
            .orderBy('id')
            .execute(),
        };
      });

      for (const table of ['conversations', 'messages', 'jobs', 'job_events', 'drafts']) expect(found.tables).toContain(table);
      // Not vacuous: the tables that must hold rows do.
      for (const table of ['conversations', 'messages', 'jobs', 'job_events']) expect(found.rows[table]!.length, table).toBeGreaterThan(0);
      // The scan reads every column: message text, owner ids and event data are in what it sees.
      expect(found.rows['messages']!.some((row) => row.includes(A_MARK))).toBe(true);
      expect(found.rows['jobs']!.some((row) => row.includes(ownerId(TOKEN_A)))).toBe(true);
      expect(found.rows['job_events']!.some((row) => row.includes(A_MARK))).toBe(true);
      for (const [table, rows] of Object.entries(found.rows)) {
        for (const row of rows) {
          expect(row, `a row of ${table}`).not.toContain(TOKEN_A);
          expect(row, `a row of ${table}`).not.toContain(TOKEN_B);
        }
      }

      const alpha = ownerId(TOKEN_A);
      const bravo = ownerId(TOKEN_B);
      expect(alpha).toMatch(/^token:[0-9a-f]{16}$/);
      expect(new Set(found.jobs.map((job) => job.owner))).toEqual(new Set([alpha, bravo]));
      expect(found.jobs.filter((job) => job.conversation_id === ids.aliceConversation).map((job) => job.owner)).toEqual([alpha, alpha]);
      expect(new Set(found.jobs.filter((job) => job.conversation_id === ids.bobConversation).map((job) => job.owner))).toEqual(new Set([bravo]));
      expect(found.conversations.find((c) => c.id === ids.aliceConversation)?.owner).toBe(alpha);
      expect(found.conversations.find((c) => c.id === ids.bobConversation)?.owner).toBe(bravo);
      // B's refused chats left nothing behind.
      expect(found.jobs.filter((job) => job.client_msg_id === 'b-1' || job.client_msg_id === 'b-2')).toEqual([]);
      expect(found.conversations.map((c) => c.id)).not.toContain('shared');

      // A's history is exactly A's four turns.
      expect(found.aliceMessages.map((m) => [m.role, m.content])).toEqual([
        ['user', A_FIRST],
        ['assistant', A_FIRST_ANSWER],
        ['user', A_SLOW],
        ['assistant', A_SLOW_ANSWER],
      ]);
    });
  });
}
