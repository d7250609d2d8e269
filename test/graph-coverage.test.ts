import { createMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import { walkableJobMachine } from './helpers/job-paths.js';
import { coverageGaps, visitedBy } from './helpers/machine-transitions.js';
import { modelWalks } from './helpers/model-paths.js';
import { transitionCover } from './helpers/transition-cover.js';

/**
 * Graph coverage: every state and every transition of every machine (read from its definition, walking
 * `machine.root`: `always`, `after`, invoke `onDone`/`onError`, each guarded alternative on its own) must
 * be visited by the paths the model-based tests drive (`helpers/model-paths.ts`, the generators those
 * tests call). The paths are replayed through the machine and the transitions each microstep takes are
 * recorded; a failure names what no path reached.
 */

const machines = modelWalks();

describe('graph coverage of the model-based tests', () => {
  for (const { name, definition, walkable, system, cover } of machines) {
    it(`${name}: every state and every transition is taken by a generated path (${system.length} system + ${cover.length} cover paths)`, () => {
      const gaps = coverageGaps(definition, visitedBy(walkable, [...system, ...cover]));
      expect({ unvisitedStates: gaps.states, untakenTransitions: gaps.transitions }).toEqual({ unvisitedStates: [], untakenTransitions: [] });
      expect(gaps.total.transitions).toBeGreaterThan(0);
    });
  }

  it('reports, by name, a transition no path takes (a small machine)', () => {
    const door = createMachine({
      id: 'door',
      initial: 'closed',
      states: {
        closed: { on: { open: 'opened', lock: { guard: 'hasKey', target: 'locked' } } },
        opened: { on: { close: 'closed' } },
        locked: { on: { unlock: 'closed' }, after: { 1000: 'closed' } },
      },
    }).provide({ guards: { hasKey: () => true } });
    // The paths only ever open and close the door (generated as the machines' are).
    const walks = transitionCover(door, { input: undefined, events: () => [{ type: 'open' }, { type: 'close' }], key: (s) => JSON.stringify(s.value) });
    expect(walks.length).toBeGreaterThan(0);
    const gaps = coverageGaps(door, visitedBy(door, walks));
    expect(gaps.states).toEqual(['door.locked']);
    expect(gaps.transitions).toEqual(['door.closed: lock [hasKey] → door.locked', 'door.locked: unlock → door.closed', 'door.locked: after 1000 ms → door.closed']);
  });

  it('fails when a transition is added to the job machine without a path that reaches it', () => {
    const job = machines.find((machine) => machine.name === 'job')!;
    const config = walkableJobMachine.config as { states: Record<string, { on?: object }> };
    // The same machine with one more way out of `classify`, which no generated path sends.
    const extended = createMachine({
      ...config,
      states: { ...config.states, classify: { ...config.states.classify, on: { ...config.states.classify!.on, 'backend.gone': '#job.failed' } } },
    } as never).provide(walkableJobMachine.implementations as never);
    const gaps = coverageGaps(extended, visitedBy(extended, [...job.system, ...job.cover]));
    expect(gaps).toEqual({ states: [], transitions: ['job.classify: backend.gone → job.failed'], total: { states: 35, transitions: 78 } });
  });
});
