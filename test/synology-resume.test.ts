import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { splitMessage } from '../src/transport/synology/split-message.js';
import { startFakeBackend, type FakeBackend } from './fakes/fake-openai-backend.js';
import { FakeSynologyNas } from './fakes/fake-synology-nas.js';
import { childConfig, startChildGateway, type ChildGateway } from './helpers/child-gateway.js';
import { scriptModels } from './helpers/scripted-models.js';

/**
 * Synology replies are durable (DESIGN §5: the user always gets a reply, also after a restart). A gateway
 * in its own process, a fake NAS and the fake model servers in this one: the gateway is killed (-9) or
 * stopped (SIGTERM) at chosen points and started again on the same data folder, and the NAS must still
 * get the reply — the apology for a job the kill interrupted, the parts a finished answer had left.
 *
 * Delivery is at least once: a part in flight at the kill (posted, not yet acknowledged) is posted again
 * after the restart. These tests catch the gateway with exactly that part held unanswered by the NAS, so
 * the outcome is fixed: that part twice, in its place; no part lost; the order kept.
 */

const TOKEN = 'synology-resume-outgoing-token';
const NAS_TOKEN = 'nas-incoming-secret-77';
const json = (value: unknown) => JSON.stringify(value);

/** A 5000-character answer: three parts. */
const LONG_ANSWER = Array.from({ length: 100 }, (_, n) => `Sentence number ${String(n).padStart(3, '0')} says little but says it well.`)
  .join(' ')
  .slice(0, 5000)
  .replace(/ \S*$/, ' end.');
const PARTS = splitMessage(LONG_ANSWER);
/** What the reasoner streams for "think a while": about a second, in pieces. */
const PIECES = Array.from({ length: 20 }, (_, i) => `piece${i} `);

let small: FakeBackend;
let large: FakeBackend;
let nas: FakeSynologyNas;
const dirs: string[] = [];
const gateways: ChildGateway[] = [];

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  scriptModels(small, large, {
    classify: (text) => {
      if (text.startsWith('think')) return json({ action: 'route' });
      if (text === 'long please') return json({ action: 'direct', response: LONG_ANSWER });
      return json({ action: 'direct', response: `You said: ${text}` });
    },
    // "think forever" never ends (a piece every 50 ms); "think a while" ends after about a second.
    reason: (text) => (text.includes('forever') ? { fault: 'slow_drip' } : { content: PIECES, chunkDelayMs: 50 }),
  });
  nas = await FakeSynologyNas.start(NAS_TOKEN);
});

// Nothing of one test may post into the next one's.
afterEach(async () => {
  for (const gateway of gateways) await gateway.kill('SIGKILL');
  nas.hold = null;
});

afterAll(async () => {
  for (const gateway of gateways) await gateway.kill('SIGKILL');
  await nas?.close();
  await small?.close();
  await large?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-synology-resume-'));
  dirs.push(dir);
  return dir;
}

async function start(dir: string, graceMs = 10_000): Promise<ChildGateway> {
  const gateway = await startChildGateway(
    dir,
    childConfig(dir, small, large, {
      backend: { timeoutMs: 5_000 },
      synology: { token: TOKEN, incomingUrl: nas.url, mode: 'chatbot' },
      shutdown: { graceMs },
    }),
  );
  gateways.push(gateway);
  return gateway;
}

/** The posts for one user (the bot API names the user), and the texts of those answered. */
const postsFor = (userId: string) => nas.posts.filter((post) => post.payload.user_ids?.[0] === Number(userId));
const deliveredTo = (userId: string) => postsFor(userId).filter((post) => post.answered).map((post) => post.payload.text);

/** Generous: under a loaded machine a gateway process takes many seconds to start. */
const WAIT = { timeout: 60_000 };

async function webhook(gateway: ChildGateway, text: string, userId: string): Promise<void> {
  const response = await fetch(`${gateway.url}/synology/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: TOKEN, user_id: userId, username: 'alice', channel_id: '7', post_id: '99', timestamp: '1', text }).toString(),
  });
  expect(response.status).toBe(200);
}

type LogRecord = { msg?: string; jobId?: string | null; user?: string; state?: string; nextPart?: number; parts?: number };
const records = (gateway: ChildGateway): LogRecord[] =>
  gateway.logs.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogRecord];
    } catch {
      return [];
    }
  });

/**
 * Writes the gateway's ordered writer has committed (its `/metrics` journal lag count). They commit in
 * the order they were queued, so a count past the writes queued before a job's accept proves the accept
 * is durable: a job starts while its accept is being written, so its reasoner call alone proves nothing.
 */
async function committedWrites(gateway: ChildGateway): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_journal_batch_lag_seconds_count'));
  if (line === undefined) throw new Error('no switchboard_journal_batch_lag_seconds_count in /metrics');
  return Number(line.split(' ').at(-1));
}

/** No log line of any gateway holds a message, an answer, a token or the NAS URL. */
function expectPrivateLogs(texts: string[]): void {
  const all = gateways.flatMap((gateway) => gateway.logs).join('\n');
  for (const text of [...texts, TOKEN, NAS_TOKEN]) expect(all).not.toContain(text);
}

describe('kill -9, then start again on the same data folder', () => {
  it('a job the kill interrupted: the user gets the apology after the restart', async () => {
    const user = '41';
    const dir = freshDir();
    const first = await start(dir);
    const asked = large.chatRequests.length;
    const writes = await committedWrites(first);
    await webhook(first, 'think forever about it', user);
    // The job runs: the reasoner is streaming its answer…
    await vi.waitFor(() => expect(large.chatRequests.length).toBeGreaterThan(asked), WAIT);
    // …and it was accepted: its accept (behind at most the delivery's own row) and its first events are
    // committed. Killed before that, it never existed, and the apology would rightly give no reason.
    await vi.waitFor(async () => expect(await committedWrites(first)).toBeGreaterThanOrEqual(writes + 4), WAIT);
    expect(await first.kill('SIGKILL')).toBe(null);
    expect(postsFor(user)).toHaveLength(0);

    const second = await start(dir);
    await vi.waitFor(() => expect(deliveredTo(user)).toHaveLength(1), WAIT);
    expect(deliveredTo(user)).toEqual(['Sorry, I could not answer that. The server restarted while this job was running.']);
    await vi.waitFor(() => expect(records(second).filter((r) => r.msg === 'resuming a synology delivery')).toHaveLength(1), WAIT);
    const resumed = records(second).find((r) => r.msg === 'resuming a synology delivery')!;
    expect(resumed.jobId).toMatch(/^[0-9a-f-]{36}$/);
    expect(resumed).toMatchObject({ state: 'waiting', user: expect.stringMatching(/^[0-9a-f]{12}$/) });
    // Delivered: nothing is owed any more (after a clean stop, the next start resumes nothing).
    expect(await second.kill('SIGTERM')).toBe(0);
    const third = await start(dir);
    await webhook(third, 'ping', user);
    await vi.waitFor(() => expect(deliveredTo(user)).toHaveLength(2), WAIT);
    expect(deliveredTo(user).at(-1)).toBe('You said: ping');
    expect(records(third).filter((r) => r.msg === 'resuming a synology delivery')).toHaveLength(0);
    expect(await third.kill('SIGTERM')).toBe(0);
    expectPrivateLogs(['think forever about it']);
  }, 300_000);

  it('a finished answer killed between its parts: the rest arrives after the restart, in order, none lost', async () => {
    const user = '42';
    expect(PARTS).toHaveLength(3);
    const dir = freshDir();
    const first = await start(dir);
    // The NAS takes the first part, then holds the second unanswered: the gateway dies with it in flight.
    nas.hold = (post) => post.payload.text === PARTS[1];
    await webhook(first, 'long please', user);
    await vi.waitFor(() => expect(postsFor(user).filter((post) => post.held)).toHaveLength(1), WAIT);
    expect(await first.kill('SIGKILL')).toBe(null);
    expect(deliveredTo(user)).toEqual([PARTS[0]]);

    nas.hold = null;
    const second = await start(dir);
    await vi.waitFor(() => expect(deliveredTo(user)).toHaveLength(3), WAIT);
    // At least once: the part in flight at the kill came again; nothing else did, nothing is missing.
    expect(postsFor(user).map((post) => post.payload.text)).toEqual([PARTS[0], PARTS[1], PARTS[1], PARTS[2]]);
    expect(deliveredTo(user)).toEqual(PARTS);
    await vi.waitFor(() => expect(records(second).some((r) => r.msg === 'resuming a synology delivery')).toBe(true), WAIT);
    expect(records(second).find((r) => r.msg === 'resuming a synology delivery')).toMatchObject({ state: 'sending', nextPart: 1, parts: 3 });
    expect(await second.kill('SIGTERM')).toBe(0);
    expectPrivateLogs(['long please', PARTS[0]!.slice(0, 40)]);
  }, 300_000);
});

describe('SIGTERM (a graceful stop)', () => {
  it('an answer that finishes within the grace period is posted before the process exits', async () => {
    const user = '43';
    const dir = freshDir();
    const gateway = await start(dir, 30_000);
    const asked = large.chatRequests.length;
    await webhook(gateway, 'think a while', user);
    await vi.waitFor(() => expect(large.chatRequests.length).toBeGreaterThan(asked), WAIT);
    // The reasoner is still streaming (about a second) when the stop begins.
    expect(postsFor(user)).toHaveLength(0);
    expect(await gateway.kill('SIGTERM')).toBe(0);
    expect(deliveredTo(user)).toEqual([PIECES.join('').trim()]);
  }, 300_000);

  it('a reply the NAS does not take within the grace period stays owed and is posted after the restart', async () => {
    const user = '44';
    const dir = freshDir();
    const first = await start(dir, 1_000);
    nas.hold = () => true;
    await webhook(first, 'hello there', user);
    await vi.waitFor(() => expect(postsFor(user)).toHaveLength(1), WAIT);
    expect(await first.kill('SIGTERM')).toBe(0);
    await vi.waitFor(
      () => expect(records(first).some((r) => r.msg === 'grace period over: synology replies not yet posted are kept for the next start')).toBe(true),
      WAIT,
    );
    expect(deliveredTo(user)).toEqual([]);

    nas.hold = null;
    const second = await start(dir);
    await vi.waitFor(() => expect(deliveredTo(user)).toEqual(['You said: hello there']), WAIT);
    expect(postsFor(user).map((post) => post.payload.text)).toEqual(['You said: hello there', 'You said: hello there']);
    expect(await second.kill('SIGTERM')).toBe(0);
    expectPrivateLogs(['hello there']);
  }, 300_000);
});
