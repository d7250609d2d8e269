/**
 * Text PostgreSQL cannot store (DESIGN §4): U+0000 in a chat is refused at the door (`bad_request`, the
 * connection keeps working); lone surrogates in user text and U+0000 or lone surrogates in model output
 * become U+FFFD before they reach the journal — a surrogate pair a server splits across two stream
 * deltas is joined again. The journal never has a gap: the replay of a job (subscribe afterSeq 0 on a
 * new connection) is contiguous and identical, event by event, to what the client saw live, terminal
 * event included. The real gateway over fake model servers, on PGlite and (TEST_DATABASE_URL) PostgreSQL.
 *
 * On the wire JSON carries lone surrogates as `\udXXX` escapes: `JSON.stringify` writes them so, and
 * `JSON.parse` gives them back, both in our frames and in the fake's SSE.
 */
import type { InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { testDialects } from './helpers/databases.js';
import { checkContract, replay, roundTrip, sendChat, sendForError } from './helpers/frames.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './helpers/gateway-database.js';
import { startTestGateway, TestClient, type EventFrame, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText, scriptModels } from './helpers/scripted-models.js';

const FFFD = '\uFFFD';
const EMOJI = '\ud83d\ude00'; // 😀

/** A user text with a valid pair, a lone high and a lone low surrogate. */
const LONELY_QUESTION = `emoji please ${EMOJI} high \ud800 low \udfff end`;
const LONELY_QUESTION_STORED = `emoji please ${EMOJI} high ${FFFD} low ${FFFD} end`;
/** The reasoner's chunks: a pair split across two deltas, a truly lone low surrogate, a NUL. */
const SPLIT_CHUNKS = ['smile \ud83d', '\ude00 and lone \udc00 end', ' nul\u0000here'];
const SPLIT_ANSWER = `smile ${EMOJI} and lone ${FFFD} end nul${FFFD}here`;

const READY_QUESTION = 'ready answer please';
/** The classifier's own answer (a non-streamed completion) with a lone surrogate and a NUL. */
const READY_RESPONSE = 'ready \ud800 and \u0000 end';
const READY_ANSWER = `ready ${FFFD} and ${FFFD} end`;

const BREAK_QUESTION = 'break after half a pair';

/** Every string in `value` (keys too) is well-formed UTF-16 without U+0000. */
function storable(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\u0000');
  if (Array.isArray(value)) return value.every(storable);
  if (typeof value === 'object' && value !== null) return Object.entries(value).every(([key, item]) => storable(key) && storable(item));
  return true;
}

for (const dialect of testDialects()) {
  describe(`text PostgreSQL cannot store (${dialect})`, () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let setup: GatewayDatabase | undefined;
    let gateway: TestGateway | undefined;
    let gatewayClosed = false;
    let client: TestClient;
    const submitted: string[] = [];
    const ids = { lonely: { jobId: '', conversationId: '' }, ready: { jobId: '', conversationId: '' } };

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, {
        classify: (text) => {
          if (text === READY_QUESTION) return JSON.stringify({ action: 'direct', response: READY_RESPONSE });
          return JSON.stringify({ action: 'route' });
        },
        reason: (text) => {
          // Paced so that each delta is its own network read (and its own `result` event).
          if (text.startsWith('emoji please')) return { content: SPLIT_CHUNKS, chunkDelayMs: 20 };
          if (text === BREAK_QUESTION) return { fault: 'drop_mid_stream', content: ['broken \ud83d'] };
          return { content: ['fine ', 'answer'] };
        },
      });
      setup = await prepareGatewayDatabase(dialect, { name: 'storable-text' });
      gateway = await startTestGateway({
        classifier: small,
        reasoner: large,
        ...setup.gatewayOptions,
        deps: {
          inspect: (event: InspectionEvent) => {
            if (event.type !== '@xstate.event' || event.event.type !== 'submit') return;
            const spec = (event.event as { spec?: { text: string } }).spec;
            if (spec !== undefined) submitted.push(spec.text);
          },
        },
      });
      client = await TestClient.connect(gateway.wsUrl);
    }, 60_000);

    afterAll(async () => {
      client?.close();
      if (!gatewayClosed) await gateway?.close();
      await setup?.dispose();
      await small?.close();
      await large?.close();
    });

    /** The replay of a job on a new connection, compared with what `client` saw live. */
    async function expectReplayIdentical(jobId: string, live: EventFrame[]): Promise<void> {
      const other = await TestClient.connect(gateway!.wsUrl);
      try {
        const replayed = await replay(other, jobId, 0);
        expect(replayed.map((e) => e.seq)).toEqual(replayed.map((_, i) => i + 1));
        expect(replayed).toEqual(live);
      } finally {
        other.close();
      }
    }

    it('lone surrogates in user text and model output become U+FFFD, a split pair is joined, and the replay is identical', async () => {
      // Raw JSON text: the lone surrogates travel as \ud800 and \udfff escapes.
      const raw = `{"type":"chat","text":${JSON.stringify(LONELY_QUESTION)},"clientMsgId":"lonely-1"}`;
      expect(raw).toContain('\\ud800');
      const accepted = await sendChat(client, raw, 'lonely-1');
      expect(accepted.type).toBe('accepted');
      ids.lonely = { jobId: String(accepted['jobId']), conversationId: String(accepted['conversationId']) };
      const live = await client.finished(ids.lonely.jobId);
      checkContract(live, 'done');

      expect(client.answer(ids.lonely.jobId)).toBe(SPLIT_ANSWER);
      for (const event of live) expect(storable(event.data), `${event.event} ${JSON.stringify(event.data)}`).toBe(true);
      expect(live.find((e) => e.event === 'rewrite')?.data['content']).toBe(LONELY_QUESTION_STORED);
      // The models were asked with the storable text.
      expect(small.chatRequests.filter((r) => r.body !== null && classifiedText(r.body) === LONELY_QUESTION_STORED)).toHaveLength(1);
      expect(large.chatRequests.filter((r) => r.body !== null && lastUserText(r.body) === LONELY_QUESTION_STORED)).toHaveLength(1);

      await expectReplayIdentical(ids.lonely.jobId, live);

      // The conversation goes on with the same text the client saw.
      const next = await client.chat('and now?', { conversationId: ids.lonely.conversationId });
      checkContract(await client.finished(next.jobId), 'done');
      const request = large.chatRequests.find((r) => r.body !== null && lastUserText(r.body) === 'and now?');
      expect(request?.body?.messages.slice(1, -1).map((m) => [m.role, m.content])).toEqual([
        ['user', LONELY_QUESTION_STORED],
        ['assistant', SPLIT_ANSWER],
      ]);
    });

    it("a lone surrogate and U+0000 in the classifier's own (non-streamed) answer become U+FFFD; the job ends done, replayed identically", async () => {
      const accepted = await sendChat(client, { type: 'chat', text: READY_QUESTION, clientMsgId: 'ready-1' }, 'ready-1');
      expect(accepted.type).toBe('accepted');
      ids.ready = { jobId: String(accepted['jobId']), conversationId: String(accepted['conversationId']) };
      const live = await client.finished(ids.ready.jobId);
      for (const event of live) expect(storable(event.data), `${event.event} ${JSON.stringify(event.data)}`).toBe(true);
      expect(client.answer(ids.ready.jobId)).toBe(READY_ANSWER);
      checkContract(live, 'done');
      await expectReplayIdentical(ids.ready.jobId, live);

      // The next message's models see the answer as the client saw it.
      const next = await client.chat('and then?', { conversationId: ids.ready.conversationId });
      checkContract(await client.finished(next.jobId), 'done');
      const request = large.chatRequests.find((r) => r.body !== null && lastUserText(r.body) === 'and then?');
      expect(request?.body?.messages.slice(1, -1).map((m) => [m.role, m.content])).toEqual([
        ['user', READY_QUESTION],
        ['assistant', READY_ANSWER],
      ]);
    });

    it('a stream that breaks after half a pair ends in error, and the replay ends in the same error', async () => {
      const { jobId } = await client.chat(BREAK_QUESTION);
      const live = await client.finished(jobId);
      checkContract(live, 'error');
      expect(live.at(-1)?.data['reason']).toBe('backend_disconnected');
      for (const event of live) expect(storable(event.data)).toBe(true);
      expect(client.answer(jobId).startsWith('broken ')).toBe(true);
      await expectReplayIdentical(jobId, live);
    });

    it('refuses U+0000 in the text, the conversationId or the clientMsgId with bad_request; the connection keeps working', async () => {
      const before = submitted.length;
      const text = await sendChat(client, { type: 'chat', text: 'before\u0000after', clientMsgId: 'nul-text' }, 'nul-text');
      expect(text).toMatchObject({ type: 'error', code: 'bad_request', clientMsgId: 'nul-text' });
      // Raw JSON text with the \u0000 escape, naming an existing conversation.
      const conversation = await sendChat(
        client,
        `{"type":"chat","text":"fine text","conversationId":"${ids.lonely.conversationId}\\u0000","clientMsgId":"nul-conversation"}`,
        'nul-conversation',
      );
      expect(conversation).toMatchObject({ type: 'error', code: 'bad_request', clientMsgId: 'nul-conversation' });
      const clientMsgId = await sendForError(client, { type: 'chat', text: 'fine text', clientMsgId: 'nul\u0000id' });
      expect(clientMsgId).toMatchObject({ type: 'error', code: 'bad_request' });
      for (const error of [text, conversation, clientMsgId]) expect(String(error['message'])).toMatch(/NUL|U\+0000/);

      // Refused before any job existed; and the connection serves on.
      await roundTrip(client);
      expect(submitted.length).toBe(before);
      const { jobId } = await client.chat('after the NULs');
      checkContract(await client.finished(jobId), 'done');
      expect(client.answer(jobId)).toBe('fine answer');
    });

    it('a jobId with U+0000 in subscribe or cancel is a client error (unknown_job, or bad_request naming the NUL), not an internal one', async () => {
      for (const type of ['subscribe', 'cancel']) {
        const reply = await sendForError(client, { type, jobId: `${ids.lonely.jobId}\u0000` });
        const clientError =
          reply['code'] === 'unknown_job' || (reply['code'] === 'bad_request' && /NUL|U\+0000/.test(String(reply['message'])));
        expect(clientError, `${type}: ${JSON.stringify(reply)}`).toBe(true);
      }
      await roundTrip(client);
    });

    it('a lone surrogate in a conversationId names no conversation; the connection keeps working', async () => {
      const reply = await sendChat(client, { type: 'chat', text: 'continue', conversationId: `${ids.lonely.conversationId}\ud800`, clientMsgId: 'lone-conversation' }, 'lone-conversation');
      expect(reply).toMatchObject({ type: 'error', code: 'unknown_conversation' });
      await roundTrip(client);
    });

    it('a lone surrogate in a clientMsgId still makes the chat idempotent', async () => {
      const id = 'lone-\udc00-id';
      const first = await sendChat(client, { type: 'chat', text: 'lone id', clientMsgId: id }, id);
      expect(first.type).toBe('accepted');
      checkContract(await client.finished(String(first['jobId'])), 'done');
      const again = await sendChat(client, { type: 'chat', text: 'lone id', clientMsgId: id }, id);
      expect(again).toEqual(first);
      expect(small.chatRequests.filter((r) => r.body !== null && classifiedText(r.body) === 'lone id')).toHaveLength(1);
    });

    it('stores exactly what the clients saw', async () => {
      client.close();
      await gateway!.close();
      gatewayClosed = true;
      const rows = await setup!.inspect(async (db) => ({
        messages: await db
          .selectFrom('messages')
          .select(['conversation_id', 'role', 'content'])
          .where('conversation_id', 'in', [ids.lonely.conversationId, ids.ready.conversationId])
          .orderBy('id')
          .execute(),
        events: await db.selectFrom('job_events').select(['job_id', 'seq', 'data']).execute(),
      }));
      const of = (conversationId: string) => rows.messages.filter((m) => m.conversation_id === conversationId).map((m) => [m.role, m.content]);
      expect(of(ids.lonely.conversationId).slice(0, 2)).toEqual([
        ['user', LONELY_QUESTION_STORED],
        ['assistant', SPLIT_ANSWER],
      ]);
      expect(of(ids.ready.conversationId).slice(0, 2)).toEqual([
        ['user', READY_QUESTION],
        ['assistant', READY_ANSWER],
      ]);
      for (const row of rows.events) expect(storable(row.data)).toBe(true);
    });
  });
}
