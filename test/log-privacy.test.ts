/**
 * Logs never carry what users and models say, nor tokens, even when the database fails with messages
 * that quote them. The gateway runs as a child process (`src/main.ts`, its JSON log lines collected from
 * stdout) with one auth token; triggers installed in its database before it starts refuse any message
 * or journal event holding a planted marker, and raise errors whose message, DETAIL and HINT quote the
 * refused value. One chat is refused at its accept, one fails when its model's answer is journaled; the
 * client hears of both, the gateway keeps serving, and the log says which job failed and why — in
 * identifiers and reasons only. PGlite and (TEST_DATABASE_URL) PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseSchema } from '../src/actors/store/schema.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { testDialects } from './helpers/databases.js';
import { checkContract, replay, sendChat } from './helpers/frames.js';
import { prepareGatewayDatabase, type GatewayDatabase } from './helpers/gateway-database.js';
import { TestClient } from './helpers/gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

const PLANTED_TOKEN = 'planted-token-Zq81x';
const PLANTED = 'PLANTED-MESSAGE';
/** Refused at the door: the messages trigger rejects the user's message. */
const REFUSED_TEXT = `please store ${PLANTED}-secret in my history`;
/** Accepted (no marker), but the model answers with the marker: journaling that event fails. */
const FAILING_TEXT = 'tell me about the garden-secret-Wq9 of mine';
const FAILING_ANSWER = [`Here it is: `, `${PLANTED}-secret answer`, ' and more'];
const NORMAL_TEXT = 'hello after the failures';
/** A token that is not configured: its upgrade is refused, and it is no more logged than the real one. */
const WRONG_TOKEN = 'PLANTED-MESSAGE-wrong-token-Xy42';
/** Strings that must appear in no log line. */
const NEVER_LOGGED = [PLANTED_TOKEN, PLANTED, WRONG_TOKEN, 'garden-secret-Wq9', REFUSED_TEXT, FAILING_TEXT, NORMAL_TEXT, 'refused:'];

/** Triggers that refuse the planted marker, quoting the value in message, DETAIL and HINT. */
async function installPlantedTriggers(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`
    create or replace function sb_test_refuse_planted_message() returns trigger language plpgsql as $$
    begin
      if position('PLANTED-MESSAGE' in new.content) > 0 then
        raise exception 'refused: %', new.content using detail = new.content, hint = new.content;
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`create trigger sb_test_refuse_planted_message before insert or update on messages
    for each row execute function sb_test_refuse_planted_message()`.execute(db);
  await sql`
    create or replace function sb_test_refuse_planted_event() returns trigger language plpgsql as $$
    begin
      if position('PLANTED-MESSAGE' in new.data::text) > 0 then
        raise exception 'refused: %', new.data::text using detail = new.data::text, hint = new.data::text;
      end if;
      -- The repair that ends a job whose event was refused (its error/internal event) takes a second to
      -- write: long enough for a client to ask for the job's replay while it is being written.
      if new.event = 'error' and new.data->>'reason' = 'internal' then
        perform pg_sleep(1);
      end if;
      return new;
    end
    $$`.execute(db);
  await sql`create trigger sb_test_refuse_planted_event before insert or update on job_events
    for each row execute function sb_test_refuse_planted_event()`.execute(db);
}

interface LogLine {
  level: number;
  msg?: string;
  jobId?: string;
  reason?: string;
  [key: string]: unknown;
}

for (const dialect of testDialects()) {
  describe(`log privacy under database errors that quote the data (${dialect})`, () => {
    let small: FakeBackend;
    let large: FakeBackend;
    let dir: string;
    let setup: GatewayDatabase | undefined;
    let gateway: ChildGateway | undefined;
    let stderr = '';
    let byHeader: TestClient;
    let byQuery: TestClient;
    const jobs = { failing: '', normal: '' };

    beforeAll(async () => {
      small = await startFakeBackend();
      large = await startFakeBackend();
      scriptModels(small, large, {
        classify: () => JSON.stringify({ action: 'route' }),
        reason: (text) => (text === FAILING_TEXT ? { content: FAILING_ANSWER, chunkDelayMs: 20 } : { content: ['all ', 'fine'] }),
      });
      dir = mkdtempSync(join(tmpdir(), 'sb-log-privacy-'));
      setup = await prepareGatewayDatabase(dialect, { name: 'log-privacy', install: installPlantedTriggers });
      gateway = await startChildGateway(
        dir,
        childConfig(dir, small, large, { database: setup.databaseConfig, auth: { tokens: [PLANTED_TOKEN] }, backend: { timeoutMs: 5_000 } }),
      );
      gateway.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      byHeader = await TestClient.connect(gateway.wsUrl, { authorization: `Bearer ${PLANTED_TOKEN}` });
      byQuery = await TestClient.connect(`${gateway.wsUrl}?token=${PLANTED_TOKEN}`);
    }, 90_000);

    afterAll(async () => {
      byHeader?.close();
      byQuery?.close();
      await gateway?.kill('SIGKILL');
      await setup?.dispose();
      await small?.close();
      await large?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('a chat the database refuses at its accept gets a clear error frame', async () => {
      const reply = await sendChat(byHeader, { type: 'chat', text: REFUSED_TEXT, clientMsgId: 'refused-1' }, 'refused-1');
      expect(reply).toMatchObject({ type: 'error', clientMsgId: 'refused-1' });
      expect(['bad_request', 'store_unavailable']).toContain(reply['code']);
      expect(String(reply['message'])).toMatch(/\w+/);
      expect(JSON.stringify(reply)).not.toContain(PLANTED);
      expect(byHeader.frames.filter((f) => f.type === 'accepted')).toEqual([]);
    });

    it('a job whose answer the journal refuses ends with an error event that gives a reason', async () => {
      const { jobId } = await byQuery.chat(FAILING_TEXT);
      jobs.failing = jobId;
      const events = await byQuery.finished(jobId);
      checkContract(events, 'error');
      const last = events.at(-1)!;
      expect(String(last.data['reason'])).toMatch(/^[a-z0-9_]{1,64}$/);
      expect(String(last.data['message']).length).toBeGreaterThan(0);
      // Write-ahead: nothing the journal refused reached the client.
      expect(JSON.stringify(events)).not.toContain(PLANTED);
    });

    it("the failed job's replay, asked for while the store still writes the job's end, ends with the same error", async () => {
      // Right after the live `error`: the repair that journals it sleeps in the trigger for a second.
      const live = byQuery.events(jobs.failing);
      const other = await TestClient.connect(gateway!.wsUrl, { authorization: `Bearer ${PLANTED_TOKEN}` });
      try {
        const replayed = await replay(other, jobs.failing, 0, 5_000);
        checkContract(replayed, 'error');
        expect(replayed).toEqual(live);
      } finally {
        other.close();
      }
    });

    it('an upgrade with a token that is not configured is refused (401)', async () => {
      await expect(TestClient.connect(gateway!.wsUrl, { authorization: `Bearer ${WRONG_TOKEN}` })).rejects.toThrow(/401/);
      await expect(TestClient.connect(`${gateway!.wsUrl}?token=${WRONG_TOKEN}`)).rejects.toThrow(/401/);
    });

    it('the gateway keeps serving: a normal chat ends done', async () => {
      const { jobId } = await byHeader.chat(NORMAL_TEXT);
      jobs.normal = jobId;
      checkContract(await byHeader.finished(jobId), 'done');
      expect(byHeader.answer(jobId)).toBe('all fine');
    });

    it('no log line holds the token, the planted text or a chat text; the failures are logged with job id and reason', async () => {
      byHeader.close();
      byQuery.close();
      // A clean stop flushes the log.
      expect(await gateway!.kill('SIGTERM')).toBe(0);
      const lines = gateway!.logs;
      expect(lines.some((line) => line.includes('switchboard listening'))).toBe(true);
      expect(lines.some((line) => line.includes('"stopped"'))).toBe(true);
      for (const line of [...lines, stderr]) {
        for (const secret of NEVER_LOGGED) expect(line, `a log line holds ${JSON.stringify(secret)}`).not.toContain(secret);
      }

      const entries = lines.map((line) => JSON.parse(line) as LogLine);
      const errors = entries.filter((entry) => entry.level >= 50);
      const isReason = (value: unknown) => typeof value === 'string' && /^[a-z0-9_]{1,64}$/.test(value);
      // The refused accept: logged where it was caught, with the id the job would have had and a reason.
      const refused = errors.filter((entry) => typeof entry.jobId === 'string' && entry.jobId !== jobs.failing && entry.jobId !== jobs.normal);
      expect(refused.length, JSON.stringify(errors)).toBeGreaterThanOrEqual(1);
      for (const entry of refused) expect(isReason(entry.reason), JSON.stringify(entry)).toBe(true);
      // The event the journal refused: logged with its job's id and a reason.
      const failing = errors.filter((entry) => entry.jobId === jobs.failing);
      expect(failing.length, JSON.stringify(errors)).toBeGreaterThanOrEqual(1);
      for (const entry of failing) expect(isReason(entry.reason), JSON.stringify(entry)).toBe(true);
      expect(entries.some((entry) => entry.jobId === jobs.failing && entry.msg === 'job ended' && entry['status'] === 'error')).toBe(true);
      // The normal job failed nothing.
      expect(errors.filter((entry) => entry.jobId === jobs.normal)).toEqual([]);
    });
  });
}
