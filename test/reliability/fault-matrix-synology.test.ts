/**
 * Fault matrix, Synology door: every backend fault at every job stage, as a Synology Chat outgoing
 * webhook (`POST /synology/webhook`) whose reply is posted to a fake NAS (test/fakes/fake-synology-nas.ts).
 * The job endings are those of fault-matrix-ws.test.ts (its table and notes hold here too); what the
 * user gets for them:
 *
 * | stage ↓ fault → | refused | 5xx | hang before headers | stall | dropped | malformed | slow drip | restarted |
 * |-----------------|---------|-----|---------------------|-------|---------|-----------|-----------|-----------|
 * | classify        | the answer (the reasoner's; malformed: the classifier's), posted to the NAS                  |
 * | route, react    | an apology ("Sorry, I could not answer that." and the job's sentence); the log names the reason of the ws table |
 * | tools           | an apology with the tool's sentence; reason `tool_failed` / `tool_timeout` as in the ws table          |
 *
 * The webhook itself always answers 200 at once. The reason is read from the gateway's one log line per
 * apology (`synology job failed; sending an apology`, with the job id and reason). Synology's 500 ms
 * spacing and retry backoff run on an instant clock. After each cell: slots free, the next message is
 * answered, /healthz answers, no unhandled rejection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeSynologyNas } from '../fakes/fake-synology-nas.js';
import {
  cellName,
  expected,
  FAULTS,
  HEALTHY_ANSWERS,
  slotsFreed,
  STAGES,
  startMatrixGateway,
  TEXTS,
  waitUntil,
  watchUnhandledRejections,
  type Fault,
  type MatrixGateway,
  type Stage,
} from './helpers/fault-matrix.js';

const rejections = watchUnhandledRejections();
afterEach(() => expect(rejections.seen).toEqual([]));
afterAll(() => rejections.stop());

const TOKEN = 'synology-outgoing-token';
const APOLOGY = 'Sorry, I could not answer that.';
const APOLOGY_LOG = 'synology job failed; sending an apology';

describe.each(STAGES)('fault matrix over Synology: %s', (stage: Stage) => {
  let gateway: MatrixGateway;
  let nas: FakeSynologyNas;

  /** Sends a message as user 4 and waits for the next post to the NAS; the apology's logged reason, if any. */
  async function say(text: string, timeoutMs: number) {
    const posts = nas.posts.length;
    const apologies = gateway.logLines.filter((line) => line.msg === APOLOGY_LOG).length;
    const started = performance.now();
    const response = await fetch(`${gateway.url}/synology/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: TOKEN, user_id: '4', username: 'alice', channel_id: '7', post_id: '99', timestamp: String(Date.now()), text }).toString(),
    });
    expect(response.status).toBe(200);
    await waitUntil(() => nas.posts.length > posts, 'a post to the NAS', timeoutMs);
    const elapsedMs = performance.now() - started;
    const apology = gateway.logLines.filter((line) => line.msg === APOLOGY_LOG).slice(apologies);
    // One post per message: the answer or the apology, never both, never twice.
    expect(nas.posts.length).toBe(posts + 1);
    return { text: nas.posts.at(-1)!.payload.text, reason: apology.length > 0 ? String(apology.at(-1)!.reason) : null, elapsedMs };
  }

  beforeAll(async () => {
    nas = await FakeSynologyNas.start();
    gateway = await startMatrixGateway(stage, { synologyUrl: nas.url, synologyToken: TOKEN });
    const first = await say(TEXTS[stage], 15_000);
    expect(first.reason).toBeNull();
  }, 60_000);

  afterAll(async () => {
    await gateway?.close();
    await nas?.close();
  });

  it.each(FAULTS.map((fault) => [cellName(stage, fault), fault] as const))('%s', async (_name, fault: Fault) => {
    const want = expected(stage, fault);
    await gateway.arm(fault);
    const got = await say(TEXTS[stage], want.timerMs + 15_000);
    await gateway.disarm();

    expect(gateway.faultReached()).toBe(true);
    if (want.terminal === 'done') {
      expect(got.text).toBe(want.answer);
      expect(got.reason).toBeNull();
    } else {
      expect(got.text.startsWith(APOLOGY)).toBe(true);
      // The job's own sentence follows the apology.
      expect(got.text.length).toBeGreaterThan(APOLOGY.length);
      expect(got.reason).toBe(want.reason);
    }
    expect(got.elapsedMs).toBeGreaterThanOrEqual(want.timerMs);

    await slotsFreed(gateway.runtime);
    const next = await say(TEXTS[stage], 15_000);
    expect(next.text).toBe(HEALTHY_ANSWERS[stage]);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
