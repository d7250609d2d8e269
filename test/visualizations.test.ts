import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { treeToDot } from '../scripts/dot-diagram.js';
import { treeToMermaid } from '../scripts/mermaid-diagram.js';
import { allStates, allTransitions, stateTree } from '../scripts/state-tree.js';
import { MACHINES, renderVisualizations } from '../scripts/visualizations.js';
import { sampleMachine } from './helpers/sample-machine.js';

/** `visualizations/` as `npm run visualize` would write it now, compared with the committed files. */
const files = await renderVisualizations();

describe('visualizations/', () => {
  it('has a Mermaid diagram, an SVG and a JSON definition for every machine, and the index', () => {
    const expected = MACHINES.flatMap(({ stem }) => [`${stem}.md`, `${stem}.svg`, `${stem}.json`]);
    expect([...files.keys()].sort()).toEqual([...expected, 'README.md'].sort());
  });

  for (const [file, expected] of files) {
    it(`${file} is current (run npm run visualize after changing a machine)`, () => {
      let actual = '(missing)';
      try {
        actual = readFileSync(new URL(`../visualizations/${file}`, import.meta.url), 'utf8');
      } catch {
        // Missing: compared as such, so the failure names the file.
      }
      expect(actual === expected, `visualizations/${file} differs from what npm run visualize writes`).toBe(true);
    });
  }

  it('the JSON definitions are plain data a machine config takes (ids, targets, no functions)', () => {
    for (const { stem, machine } of MACHINES) {
      const config = JSON.parse(files.get(`${stem}.json`)!) as { id: string };
      expect(config.id).toBe(machine.id);
      // Every absolute target names a state of the machine.
      for (const [, target] of files.get(`${stem}.json`)!.matchAll(/"#([^"]+)"/g)) {
        expect(() => machine.getStateNodeById(target!), `${stem}: #${target}`).not.toThrow();
      }
    }
  });

  it('each JSON definition makes the same machine again with createMachine (as Stately imports it)', () => {
    const shape = (tree: ReturnType<typeof stateTree>) => ({
      states: allStates(tree).map((state) => [state.id, state.type, state.initial, state.invokes.map((invoke) => invoke.src)]),
      transitions: allTransitions(tree).map((t) => [t.source, t.eventType, t.targets, t.actions, t.reenter]),
    });
    for (const { stem, machine } of MACHINES) {
      const imported = createMachine(JSON.parse(files.get(`${stem}.json`)!) as never);
      expect(shape(stateTree(imported)), stem).toEqual(shape(stateTree(machine)));
    }
  });

  it('draws every state, every transition label, always/after edges, guards, invokes and entry actions', () => {
    const job = files.get('job-machine.md')!;
    for (const text of [
      'preRoute --> preRouted : always / preRoute',
      'after classifyHeartbeat (2000 ms)',
      '[and(isReportedDown, canFallBack)]',
      'invoke readHealth',
      'entry / emitAck',
      'classify --> cancelled : cancel',
      'In every state:',
    ]) {
      expect(job, text).toContain(text);
    }
    expect(job).not.toContain('(any state)');
    const backend = files.get('backend-machine.md')!;
    expect(backend).toContain('idle --> serving : infer.request [leadsTo(status=serving)] / acceptRequest');
  });

  it('draws parallel regions, exit actions, nested invokes and after in milliseconds (a sample machine)', () => {
    const tree = stateTree(sampleMachine);
    const mermaid = treeToMermaid(tree);
    expect(mermaid).toMatch(/state "playing" as playing \{\n    state "audio" as playing_audio \{[\s\S]*\n    --\n    state "lyrics" as playing_lyrics \{/);
    for (const text of ['exit / stopClock', 'playing_audio_loading : invoke loadTrack', 'after 1500 ms (re-enter)', 'always [ended]', 'error load']) {
      expect(mermaid, text).toContain(text);
    }
    const dot = treeToDot(tree);
    expect(dot).toContain('subgraph "cluster_player.playing" {');
    expect(dot).toContain('style="rounded,dashed"');
  });
});
