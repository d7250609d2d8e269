import type { JsonRef, StateTree, TreeState, TreeTransition } from './state-tree.js';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * A machine's definition as a plain-JSON `createMachine` config (no functions, stable key order) that
 * Stately's visualizer and editor import: states, `initial`, `type`, `entry`/`exit`, `invoke` with
 * `src`/`onDone`/`onError`, `on`, `after` (by delay name) and `always`. Targets are absolute (`#job.done`);
 * guards and actions are their names (with params), the implementations stay in `setup()`.
 */
export function treeToConfig(tree: StateTree): Json {
  return stateConfig(tree.root, true);
}

function stateConfig(state: TreeState, isRoot: boolean): { [key: string]: Json } {
  const config: { [key: string]: Json } = {};
  if (isRoot) config.id = state.id;
  if (state.type === 'parallel' || state.type === 'final' || state.type === 'history') config.type = state.type;
  if (state.initial !== null) config.initial = state.initial.slice(state.id.length + 1);
  if (state.entryRefs.length > 0) config.entry = state.entryRefs as Json[];
  if (state.exitRefs.length > 0) config.exit = state.exitRefs as Json[];

  const byEvent = (select: (t: TreeTransition) => boolean, key: (t: TreeTransition) => string): { [key: string]: Json } => {
    const out: { [key: string]: Json[] } = {};
    for (const transition of state.transitions.filter(select)) (out[key(transition)] ??= []).push(transitionConfig(transition));
    return Object.fromEntries(Object.entries(out).map(([event, list]) => [event, list.length === 1 ? list[0]! : list]));
  };
  if (state.invokes.length > 0) {
    config.invoke = state.invokes.map((invoke) => {
      const handlers = byEvent(
        (t) => t.eventType === `xstate.done.actor.${invoke.id}` || t.eventType === `xstate.error.actor.${invoke.id}`,
        (t) => (t.kind === 'done' ? 'onDone' : 'onError'),
      );
      return { id: invoke.id, src: invoke.src, ...handlers };
    });
  }
  const invoked = new Set(state.invokes.flatMap((invoke) => [`xstate.done.actor.${invoke.id}`, `xstate.error.actor.${invoke.id}`]));
  const on = byEvent((t) => (t.kind === 'on' || t.kind === 'done' || t.kind === 'error') && !invoked.has(t.eventType), (t) => t.eventType);
  if (Object.keys(on).length > 0) config.on = on;
  const after = byEvent((t) => t.kind === 'after', (t) => String(t.delay?.name));
  if (Object.keys(after).length > 0) config.after = after;
  const always = state.transitions.filter((t) => t.kind === 'always').map(transitionConfig);
  if (always.length > 0) config.always = always;
  if (state.children.length > 0) config.states = Object.fromEntries(state.children.map((child) => [child.key, stateConfig(child, false)]));
  return config;
}

function transitionConfig(transition: TreeTransition): { [key: string]: Json } {
  const config: { [key: string]: Json } = {};
  if (transition.targets.length > 0) config.target = transition.targets.length === 1 ? `#${transition.targets[0]}` : transition.targets.map((id) => `#${id}`);
  if (transition.guardRef !== null) config.guard = transition.guardRef as JsonRef as Json;
  if (transition.actionRefs.length > 0) config.actions = transition.actionRefs as Json[];
  if (transition.reenter) config.reenter = true;
  return config;
}
