import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayReactWalks, stateKey, type ReactSnapshot, type WalkEvent } from './helpers/react-paths.js';
import { startFakeBackend, type FakeBackend, type FakeReply, type FakeRequestBody } from './fakes/fake-openai-backend.js';
import { seedDocuments, startTestGateway, testBackend, TestClient, type TestGateway } from './helpers/gateway.js';
import { classifiedText } from './helpers/scripted-models.js';

/**
 * Model-based test of the ReAct machine, like the job machine's: simple paths are generated from the
 * machine with @xstate/graph (`helpers/react-paths.ts`, shared with the graph coverage test), each path becomes a script of the fake reasoner's replies, round by round,
 * the message goes through the running gateway (reasoner with `tools: true`, documents in the store), and
 * the states the real loop actor goes through must be the path's states.
 */

const walks = gatewayReactWalks();

/** The fake reasoner's replies for a path, in the order it is asked. */
function repliesOf(events: WalkEvent[]): FakeReply[] {
  const replies: FakeReply[] = [];
  for (const event of events) {
    if (event.name === 'search') replies.push({ toolCalls: [{ name: 'search', arguments: JSON.stringify({ query: 'budget' }) }] });
    if (event.name === 'unknownTool') replies.push({ toolCalls: [{ name: 'calendar', arguments: '{}' }] });
    if (event.name === 'answer') replies.push({ content: 'An answer without searching.' });
    if (event.name === 'final') replies.push({ content: ['The budget ', 'is 12 000 euros.'] });
    if (event.name === 'error') replies.push({ fault: 'http_500' });
  }
  return replies;
}

/** Which round a request is: the assistant messages with tool calls it carries. */
const roundOf = (body: FakeRequestBody) => body.messages.filter((m) => m.role === 'assistant' && Array.isArray(m.tool_calls)).length;

const backend = (fake: FakeBackend, tools: boolean) => ({ ...testBackend(fake), tools });

let small: FakeBackend;
let large: FakeBackend;
let gateway: TestGateway;
let client: TestClient;
let replies: FakeReply[] = [];
/** The loop actor's states, by job id. */
const visited = new Map<string, string[]>();

beforeAll(async () => {
  small = await startFakeBackend();
  large = await startFakeBackend();
  small.setDefault((body) => (classifiedText(body) !== null ? { content: JSON.stringify({ action: 'route' }) } : { content: ['small'] }));
  large.setDefault((body) => replies[roundOf(body)] ?? { content: ['unscripted'] });
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-model-react-'));
  await seedDocuments(dataDir, [{ id: 'budget.md', title: 'Budget', body: 'The budget is 12 000 euros.' }]);
  gateway = await startTestGateway({
    classifier: small,
    reasoner: large,
    dataDir,
    config: { backends: { small: backend(small, false), large: backend(large, true) } },
    deps: {
      inspect: (event: InspectionEvent) => {
        if (event.type !== '@xstate.snapshot') return;
        const actor = event.actorRef as AnyActorRef;
        const parent = actor._parent?.id ?? '';
        if (actor.id !== 'react' || !parent.startsWith('job:')) return;
        const list = visited.get(parent.slice(4)) ?? [];
        const key = JSON.stringify((event.snapshot as unknown as { value: unknown }).value);
        if (list.at(-1) !== key) list.push(key);
        visited.set(parent.slice(4), list);
      },
    },
  });
  client = await TestClient.connect(gateway.wsUrl);
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.close();
  await small?.close();
  await large?.close();
});

describe(`react machine: ${walks.length} simple paths to an end, driven through the running gateway`, () => {
  it('covers every state and both ends', () => {
    const states = new Set(walks.flatMap((w) => w.steps).map((s) => stateKey(s.state as ReactSnapshot)));
    for (const expected of ['"toolRound"', '{"searching":"calling"}', '"finalRound"', '"answered"', '"failed"']) expect(states.has(expected), expected).toBe(true);
    // Two tool rounds at most: no path asks the model more than three times.
    for (const walk of walks) expect(repliesOf(walk.steps.map((s) => s.event as WalkEvent)).length).toBeLessThanOrEqual(3);
  });

  for (const path of walks) {
    const events = path.steps.slice(1).map((s) => s.event as WalkEvent);
    const expected = path.steps.map((s) => stateKey(s.state as ReactSnapshot)).filter((k, i, all) => all[i - 1] !== k);
    const label = events.map((e) => e.name ?? e.type.replace('xstate.done.actor.', 'done ')).join(' → ');
    it(label, async () => {
      replies = repliesOf(events);
      const before = large.chatRequests.length;
      const { jobId } = await client.chat('What is the budget?');
      const jobEvents = await client.finished(jobId);
      expect(visited.get(jobId)).toEqual(expected);
      expect(large.chatRequests.length - before).toBe(replies.length);
      const answered = expected.at(-1) === '"answered"';
      expect(jobEvents.at(-1)?.event).toBe(answered ? 'done' : 'error');
      expect(jobEvents.filter((e) => e.event === 'sources')).toHaveLength(answered ? 1 : 0);
    });
  }
});
