import { describe, expect, it } from 'vitest';
import type { Scripted } from './helpers/drive-walk.js';
import { driveWalk } from './helpers/drive-walk.js';
import { modelWalks } from './helpers/model-paths.js';

/**
 * Model-based tests of every machine against its actor: the transition covers of
 * `helpers/model-paths.ts` (paths that together take every transition, generated with @xstate/graph)
 * are driven against a real actor whose invoked actors the test plays (a promise settles, a callback
 * sends, the clock moves), and after each event the actor must be in the path's state. The events the
 * gateway and the fake servers can produce are driven end to end by model-job, model-react and
 * model-backend; these add the rest (failing stores, drafts, health changes, crashes, …).
 */

const SCRIPTED: Record<string, Scripted> = {
  job: { promises: ['loadConversation', 'runTool', 'saveDraft', 'clearDraft', 'describeStatus', 'readHealth', 'react'], callbacks: ['infer'] },
  react: { promises: ['runTool'], callbacks: ['infer'] },
  supervisor: { promises: [], callbacks: [] },
  conversation: { promises: [], callbacks: [] },
  'backend mailbox': { promises: [], callbacks: ['callBackend'] },
  health: { promises: ['probeBackend'], callbacks: ['inferencePing'] },
};

for (const { name, walkable, cover } of modelWalks()) {
  describe(`${name} machine: ${cover.length} generated paths driven against its actor`, () => {
    it('goes through the states of every path', async () => {
      for (const walk of cover) {
        const label = walk.events.map((event) => event.type).join(' → ');
        expect(await driveWalk(walkable, SCRIPTED[name]!, walk), label).toEqual(walk.values);
      }
    }, 60_000);
  });
}
