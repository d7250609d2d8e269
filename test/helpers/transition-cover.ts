import { getShortestPaths } from '@xstate/graph';
import type { AnyStateMachine, AnyStateNode, EventObject, SnapshotFrom } from 'xstate';
import { visitedBy, type Walk } from './machine-transitions.js';

/** A generated path with the state values the machine must be in after each event. */
export interface CoverWalk extends Walk {
  /** `JSON.stringify(snapshot.value)` after `xstate.init` and after each event. */
  values: string[];
  /** The snapshot status at the end (`active`, `done`, `error`). */
  status: string;
}

export interface CoverOptions<TMachine extends AnyStateMachine> {
  input: unknown;
  /** The events the system can produce in a state (with their payloads: outputs, errors). */
  events: (snapshot: SnapshotFrom<TMachine>) => EventObject[];
  /** What makes two snapshots the same state for the walk (the value and the context that guards read). */
  key: (snapshot: SnapshotFrom<TMachine>) => string;
}

/**
 * Paths that take every transition the events can trigger: @xstate/graph's shortest paths over a graph
 * whose nodes are transitions (previous state, event, next state), as `createTestModel` builds it, so a
 * shortest path reaches each (state, event) edge once; then only the paths that add a transition or a
 * state not taken before are kept (replayed through the machine to see which transitions they take).
 */
export function transitionCover<TMachine extends AnyStateMachine>(machine: TMachine, options: CoverOptions<TMachine>): CoverWalk[] {
  const paths = getShortestPaths(machine, {
    input: options.input,
    events: options.events as never,
    serializeState: (snapshot: unknown, event: unknown, previous: unknown) => {
      const key = options.key(snapshot as SnapshotFrom<TMachine>);
      return event && previous ? `${options.key(previous as SnapshotFrom<TMachine>)}|${JSON.stringify(event)}|${key}` : key;
    },
  } as never) as Array<{ steps: Array<{ state: { value: unknown; status: string }; event: EventObject }>; state: { status: string } }>;
  // Longest first: a long path takes what its prefixes take, so fewer paths cover everything.
  const walks = paths
    .filter((path) => path.steps.length > 1)
    .map((path) => ({
      input: options.input,
      events: path.steps.slice(1).map((step) => step.event),
      values: path.steps.map((step) => JSON.stringify(step.state.value)),
      status: path.state.status,
    }))
    .sort((a, b) => b.events.length - a.events.length || JSON.stringify(a.events).localeCompare(JSON.stringify(b.events)));
  const kept: CoverWalk[] = [];
  const seen = { states: new Set<string>(), transitions: new Set<string>() };
  for (const walk of walks) {
    const before = seen.states.size + seen.transitions.size;
    visitedBy(machine, [walk], seen);
    if (seen.states.size + seen.transitions.size > before) kept.push(walk);
  }
  return kept;
}

/** The `after` events of the states a snapshot is in, as XState names them (`xstate.after.<delay>.<state id>`). */
export function afterEvents(snapshot: unknown): EventObject[] {
  const nodes = (snapshot as { _nodes: AnyStateNode[] })._nodes;
  return nodes.flatMap((node) => node.after.map((delayed) => ({ type: delayed.eventType })));
}
