/**
 * An OpenAI API job (stateless: answered from memory, journaled after delivery) whose accept committed
 * but whose journal could not be written because PostgreSQL went down mid-answer: its client still gets
 * the whole answer, and once the server is back the store records the job as its client saw it — every
 * event, `done`, the answer — instead of leaving its row `running` (which a later restart would have
 * turned into `interrupted`). Found by test/reliability/postgres-stopped.test.ts.
 *
 * Runs on a PostgreSQL cluster of its own (stopped and started again); skips without the server binaries
 * locally and fails in CI, as store-outage.test.ts does.
 */
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startPostgresCluster, type PostgresCluster } from './helpers/postgres-cluster.js';
import { describeOnOwnCluster } from './helpers/describe-on-own-cluster.js';
import { scriptModels } from './helpers/scripted-models.js';

const PIECES = Array.from({ length: 30 }, (_, i) => `p${i} `);

describeOnOwnCluster('an OpenAI API job answered while PostgreSQL is stopped is journaled once it is back', () => {
  let cluster: PostgresCluster | undefined;
  let small: FakeBackend;
  let large: FakeBackend;
  let gateway: TestGateway | undefined;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
    small = await startFakeBackend();
    large = await startFakeBackend();
    // About 1.5 s of answer: the server is stopped after the first piece.
    scriptModels(small, large, { classify: () => JSON.stringify({ action: 'route' }), reason: () => ({ content: PIECES, chunkDelayMs: 50 }) });
    gateway = await startTestGateway({
      classifier: small,
      reasoner: large,
      config: { database: { url: cluster.url, dataDir: 'unused', statementTimeoutMs: 2_000, connectTimeoutMs: 1_000 } },
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.start().catch(() => undefined);
    await gateway?.close();
    await cluster?.destroy();
    await small?.close();
    await large?.close();
  }, 60_000);

  const query = async <T extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<T[]> => {
    const db = new pg.Client({ connectionString: cluster!.url });
    await db.connect();
    try {
      return (await db.query<T>(text, values)).rows;
    } finally {
      await db.end();
    }
  };

  it('delivers the whole answer during the outage, then stores every event, done and the answer', async () => {
    const response = await request(`${gateway!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'a question' }] }),
    });
    expect(response.statusCode).toBe(200);
    const jobId = String(response.headers['x-switchboard-job-id']);
    // Its accept has committed (the row says running) before the server goes away.
    await vi.waitFor(async () => expect(await query('select status from jobs where id = $1', [jobId])).toEqual([{ status: 'running' }]), {
      timeout: 5_000,
      interval: 50,
    });
    await cluster!.stop();
    let body = '';
    try {
      body = await response.body.text();
    } finally {
      await cluster!.start();
    }
    const contents = body
      .split('\n')
      .filter((line) => line.startsWith('data: {'))
      .map((line) => (JSON.parse(line.slice('data: '.length)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '');
    expect(contents.join('')).toBe(PIECES.join(''));
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);

    await vi.waitFor(
      async () => {
        expect(await query('select status, reason from jobs where id = $1', [jobId])).toEqual([{ status: 'done', reason: null }]);
        const events = await query<{ seq: number; event: string; data: { content?: string } }>(
          'select seq, event, data from job_events where job_id = $1 order by seq',
          [jobId],
        );
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        expect(events.at(-1)?.event).toBe('done');
        expect(events.filter((e) => e.event === 'result').map((e) => e.data.content).join('')).toBe(PIECES.join(''));
        expect(await query("select content from messages where job_id = $1 and role = 'assistant'", [jobId])).toEqual([{ content: PIECES.join('') }]);
      },
      // The writer tries again with backoff of up to 5 s.
      { timeout: 15_000, interval: 250 },
    );
  }, 60_000);
});
