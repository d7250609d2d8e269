import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASSIFICATIONS, gatewayJobWalks, sink, stateKey, type JobSnapshot } from './helpers/job-paths.js';
import { startFakeBackend, type FakeBackend, type FakeReply } from './fakes/fake-openai-backend.js';
import { seedDocuments, startTestGateway, TestClient, type TestGateway } from './helpers/gateway.js';
import { classifiedText, lastUserText } from './helpers/scripted-models.js';

/**
 * Model-based test of the job machine: simple paths are generated from the machine with @xstate/graph
 * (`helpers/job-paths.ts`, shared with the graph coverage test)
 * for three kinds of message (one the classifier must judge, one pre-routed to the system status, one
 * pre-routed to the document tool), each path is turned into a script for the two fake model servers
 * (and a moment to cancel), driven through the running gateway, and the states the real job actor goes
 * through must be the path's states.
 */

const walks = gatewayJobWalks();

/** One path as a script: what each fake answers and when the client cancels. */
interface Script {
  classify: FakeReply;
  smallStream: FakeReply;
  phrase: FakeReply;
  reason: FakeReply;
  /** Cancel once the job is in this state (and, for a stream, has shown its first chunk when `afterChunk`). */
  cancelIn: string | null;
  afterChunk: boolean;
}

const LONG: FakeReply = { content: Array.from({ length: 300 }, () => 'y'), chunkDelayMs: 20 };

/** How a stream state behaves in a path, read from the events taken while in it. */
function streamReply(events: string[]): FakeReply {
  const chunk = events.includes('infer.chunk');
  if (events.includes('cancel')) return chunk ? LONG : { fault: 'hang_before_headers' };
  if (events.includes('infer.error')) return chunk ? { fault: 'drop_mid_stream', content: ['x'] } : { fault: 'http_500' };
  return { content: chunk ? ['x', 'y'] : [] };
}

function scriptOf(steps: Array<{ event: { type: string; [key: string]: unknown }; from: string }>): Script {
  const script: Script = {
    classify: { content: CLASSIFICATIONS.ready },
    smallStream: { content: ['x'] },
    phrase: { content: 'phrased' },
    reason: { content: ['x'] },
    cancelIn: null,
    afterChunk: false,
  };
  const inState = (match: (from: string) => boolean) => steps.filter((s) => match(s.from)).map((s) => s.event.type);
  const classify = steps.find((s) => s.from.includes('classify'));
  if (classify?.event.type === 'infer.done') script.classify = { content: CLASSIFICATIONS[String(classify.event.name)] };
  if (classify?.event.type === 'infer.error') {
    const error = classify.event.error as { reason: string };
    script.classify = error.reason === 'backend_protocol_error' ? { fault: 'malformed_sse' } : { fault: 'http_500' };
  }
  if (classify?.event.type === 'cancel') script.classify = { fault: 'hang_before_headers' };
  const direct = inState((f) => f.includes('"direct"'));
  const route = inState((f) => f.includes('"route"') && f.includes('"streaming"'));
  const fallback = inState((f) => f.includes('"fallback"'));
  if (direct.length > 0) script.smallStream = streamReply(direct);
  if (fallback.length > 0) script.smallStream = streamReply(fallback);
  if (route.length > 0) script.reason = streamReply(route);
  if (inState((f) => f.includes('"phrasing"')).includes('infer.error')) script.phrase = { fault: 'http_500' };
  const cancel = steps.find((s) => s.event.type === 'cancel');
  if (cancel) {
    script.cancelIn = cancel.from;
    script.afterChunk = steps.some((s) => s.event.type === 'infer.chunk' && s.from === cancel.from);
  }
  return script;
}

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;
const visited = new Map<string, string[]>();
let script: Script;

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  small.setDefault((body) => {
    if (classifiedText(body) !== null) return script.classify;
    if (!body.stream && lastUserText(body).startsWith('[request]')) return script.phrase;
    return script.smallStream;
  });
  large.setDefault(() => script.reason);
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-model-job-'));
  await seedDocuments(dataDir, [{ id: 'budget.md', title: 'Budget', body: 'The budget is 12 000 euros.' }]);
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    dataDir,
    deps: {
      inspect: (event: InspectionEvent) => {
        if (event.type !== '@xstate.snapshot') return;
        const id = (event.actorRef as AnyActorRef).id;
        if (!id.startsWith('job:')) return;
        const list = visited.get(id.slice(4)) ?? [];
        const key = JSON.stringify((event.snapshot as unknown as { value: unknown }).value);
        if (list.at(-1) !== key) list.push(key);
        visited.set(id.slice(4), list);
      },
    },
  });
}, 60_000);

afterAll(async () => {
  sink.stop();
  client?.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

describe(`job machine: ${walks.length} simple paths to an end, driven through the running gateway`, () => {
  it('covers every branch and every end', () => {
    const states = new Set(walks.flatMap((w) => w.path.steps.map((s) => stateKey(s.state as JobSnapshot))));
    for (const expected of ['classify', 'direct', 'systemStatus', 'tools', 'route', 'fallback', 'phrasing']) {
      expect([...states].some((key) => key.includes(expected)), expected).toBe(true);
    }
    // `clarify` and a ready `direct` answer pass through to `complete` and `done` in one step: seen by their events.
    const classified = new Set(walks.flatMap((w) => w.path.steps.map((s) => String((s.event as { name?: string }).name ?? ''))));
    for (const name of Object.keys(CLASSIFICATIONS)) expect(classified.has(name), name).toBe(true);
    const ends = new Set(walks.map((w) => stateKey(w.path.state as JobSnapshot)));
    expect(ends).toEqual(new Set(['"done"', '"failed"', '"cancelled"']));
  });

  for (const { kind, text, path } of walks) {
    const expected = path.steps.map((s) => stateKey(s.state as JobSnapshot)).filter((k, i, all) => all[i - 1] !== k);
    const steps = path.steps.slice(1).map((s, i) => ({ event: s.event as { type: string; [key: string]: unknown }, from: stateKey(path.steps[i]!.state as JobSnapshot) }));
    const label = steps.map((s) => (s.event.name ? `${s.event.type}(${String(s.event.name)})` : s.event.type.replace('xstate.done.actor.', 'done '))).join(' → ');
    it(`${kind}: ${label}`, async () => {
      script = scriptOf(steps);
      // A connection per path: the WebSocket rate limit is per connection.
      client?.close();
      client = await TestClient.connect(gateway.wsUrl);
      const { jobId } = await client.chat(text);
      if (script.cancelIn !== null) {
        const state = script.cancelIn;
        const deadline = Date.now() + 5_000;
        while (!(visited.get(jobId) ?? []).includes(state) || (script.afterChunk && !client.events(jobId).some((e) => e.event === 'result'))) {
          if (Date.now() > deadline) throw new Error(`job never reached ${state}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        client.send({ type: 'cancel', jobId });
      }
      const events = await client.finished(jobId);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(visited.get(jobId)).toEqual(expected);
      const end = expected.at(-1);
      expect(events.at(-1)?.event).toBe(end === '"done"' ? 'done' : end === '"failed"' ? 'error' : 'cancelled');
    });
  }
});
