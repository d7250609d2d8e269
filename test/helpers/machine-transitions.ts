import { createActor, SimulatedClock, type AnyActorRef, type AnyStateMachine, type AnyStateNode, type EventObject, type InspectionEvent } from 'xstate';
import { allStates, allTransitions, stateTree } from '../../scripts/state-tree.js';

/** A generated path as what drives it: the machine's input and the events after `xstate.init`. */
export interface Walk {
  input: unknown;
  events: EventObject[];
}

/** What some walks visited: state ids and transition names (as `scripts/state-tree.ts` names them). */
export interface Visited {
  states: Set<string>;
  transitions: Set<string>;
}

/** What a machine has that no walk visited. */
export interface CoverageGaps {
  states: string[];
  transitions: string[];
  total: { states: number; transitions: number };
}

/**
 * Replays walks through actors of `machine` (a variant with inert actors, as the walks were generated
 * from) on a clock that never moves by itself, and records every transition each microstep took
 * (`always` ones included) and every state the actor was in, transient ones included.
 */
export function visitedBy(machine: AnyStateMachine, walks: Walk[], into: Visited = { states: new Set(), transitions: new Set() }): Visited {
  const tree = stateTree(machine);
  for (const walk of walks) {
    const record = (event: InspectionEvent): void => {
      if (event.type !== '@xstate.microstep' || (event.actorRef as AnyActorRef).sessionId !== event.rootId) return;
      for (const transition of event._transitions) {
        const known = tree.byDefinition.get(transition);
        if (known) into.transitions.add(known.name);
      }
      recordStates(event.snapshot, into);
    };
    const actor = createActor(machine, { input: walk.input, clock: new SimulatedClock(), inspect: record });
    // A walk may end in the machine's own failure (the supervisor rethrowing a bug): that is its end.
    actor.subscribe({ error: () => {} });
    actor.start();
    recordStates(actor.getSnapshot(), into);
    for (const event of walk.events) {
      // The transitions the event selects, recorded before they run: one whose action throws (the
      // supervisor rethrowing a member's bug) fails the actor before its microstep is reported.
      if (actor.getSnapshot().status === 'active') {
        for (const transition of machine.getTransitionData(actor.getSnapshot(), event)) {
          const known = tree.byDefinition.get(transition);
          if (known) into.transitions.add(known.name);
        }
      }
      actor.send(event);
    }
    actor.stop();
  }
  return into;
}

function recordStates(snapshot: unknown, into: Visited): void {
  const nodes = (snapshot as { _nodes?: AnyStateNode[] })._nodes ?? [];
  for (const node of nodes) if (node.path.length > 0) into.states.add(node.id);
}

/** The states and transitions of `definition` (the real machine) that `visited` lacks, by name. */
export function coverageGaps(definition: AnyStateMachine, visited: Visited): CoverageGaps {
  const tree = stateTree(definition);
  const states = allStates(tree).map((state) => state.id);
  const transitions = allTransitions(tree).map((transition) => transition.name);
  return {
    states: states.filter((id) => !visited.states.has(id)),
    transitions: transitions.filter((name) => !visited.transitions.has(name)),
    total: { states: states.length, transitions: transitions.length },
  };
}
