import type { AnyStateMachine, AnyStateNode } from 'xstate';

/** One transition of a state node, as the diagrams, the JSON export and the coverage test name it. */
export interface TreeTransition {
  /** Unique within the machine and readable: `job.classify: infer.error [isBackendDown] → job.route`. */
  name: string;
  /** The state node it belongs to (its id, e.g. `job.classify`). */
  source: string;
  /** The event type as XState has it (`xstate.after.…`, `xstate.done.actor.…`); `''` for `always`. */
  eventType: string;
  kind: 'on' | 'always' | 'after' | 'done' | 'error';
  /** The event as a person reads it: `always`, `after streamHeartbeat (4000 ms)`, `done readHealth`. */
  label: string;
  guard: string | null;
  /** Target state ids; empty for a transition that only runs actions. */
  targets: string[];
  actions: string[];
  /** Guard and actions as JSON a machine config takes: a name, `{ type, params }`, or `{ type: 'and', guards }`. */
  guardRef: JsonRef | null;
  actionRefs: JsonRef[];
  reenter: boolean;
  /** For `after`: the delay's name or milliseconds, and its milliseconds when fixed. */
  delay?: { name: string | number; ms: number | null };
}

/** A guard or action as plain JSON. */
export type JsonRef = string | { type: string; params?: unknown; guards?: JsonRef[] };

/** One state node with what a diagram shows of it. */
export interface TreeState {
  id: string;
  key: string;
  path: string[];
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** The initial child's id (compound states). */
  initial: string | null;
  entry: string[];
  exit: string[];
  entryRefs: JsonRef[];
  exitRefs: JsonRef[];
  invokes: Array<{ id: string; src: string }>;
  transitions: TreeTransition[];
  children: TreeState[];
}

/** The machine's state tree, walked from `machine.root` in definition order (so the output is stable). */
export interface StateTree {
  id: string;
  root: TreeState;
  /** Every transition by the XState object that defines it, for matching the transitions an actor takes. */
  byDefinition: Map<object, TreeTransition>;
}

interface TransitionLike {
  target?: readonly AnyStateNode[] | undefined;
  guard?: unknown;
  actions?: readonly unknown[];
  reenter?: boolean;
}

/** Walks `machine.root`: every state, and every transition including `always`, `after` and invoke `onDone`/`onError`. */
export function stateTree(machine: AnyStateMachine): StateTree {
  const byDefinition = new Map<object, TreeTransition>();
  const names = new Set<string>();
  const delays = (machine.implementations.delays ?? {}) as Record<string, unknown>;

  const visit = (node: AnyStateNode): TreeState => {
    const afterTypes = new Map<string, string | number>();
    for (const delayed of node.after) afterTypes.set(delayed.eventType, delayed.delay as string | number);
    const transitions: TreeTransition[] = [];
    const add = (eventType: string, definition: TransitionLike): void => {
      const kind = kindOf(eventType);
      const delay = afterTypes.get(eventType);
      const transition: TreeTransition = {
        name: '',
        source: node.id,
        eventType,
        kind,
        label: eventLabel(eventType, kind, delay, delays),
        guard: definition.guard ? guardLabel(definition.guard) : null,
        targets: (definition.target ?? []).map((target) => target.id),
        actions: (definition.actions ?? []).map(actionLabel),
        guardRef: definition.guard ? jsonRef(definition.guard) : null,
        actionRefs: (definition.actions ?? []).map(jsonRef),
        reenter: definition.reenter ?? false,
        ...(delay === undefined ? {} : { delay: { name: delay, ms: delayMs(delay, delays) } }),
      };
      transition.name = uniqueName(names, transition);
      transitions.push(transition);
      byDefinition.set(definition, transition);
    };
    for (const [eventType, definitions] of node.transitions) for (const definition of definitions) add(eventType, definition as TransitionLike);
    for (const definition of node.always ?? []) add('', definition as TransitionLike);

    const children = (Object.values(node.states) as AnyStateNode[]).map(visit);
    const initial = node.type === 'compound' ? ((node.initial?.target as AnyStateNode[] | undefined)?.[0]?.id ?? null) : null;
    const entry = node.entry.filter((action) => !isAfterPlumbing(action));
    const exit = node.exit.filter((action) => !isAfterPlumbing(action));
    return {
      id: node.id,
      key: node.key,
      path: [...node.path],
      type: node.type,
      initial,
      entry: entry.map(actionLabel),
      exit: exit.map(actionLabel),
      entryRefs: entry.map(jsonRef),
      exitRefs: exit.map(jsonRef),
      invokes: node.invoke.map((invoke) => ({ id: String(invoke.id), src: typeof invoke.src === 'string' ? invoke.src : String(invoke.id) })),
      transitions,
      children,
    };
  };
  return { id: machine.id, root: visit(machine.root), byDefinition };
}

/** Every state of the tree but the root, depth first in definition order. */
export function allStates(tree: StateTree): TreeState[] {
  const out: TreeState[] = [];
  const walk = (state: TreeState): void => {
    for (const child of state.children) {
      out.push(child);
      walk(child);
    }
  };
  walk(tree.root);
  return out;
}

/** Every transition of the tree (the root's first), each guarded alternative on its own. */
export function allTransitions(tree: StateTree): TreeTransition[] {
  return [tree.root, ...allStates(tree)].flatMap((state) => state.transitions);
}

function kindOf(eventType: string): TreeTransition['kind'] {
  if (eventType === '') return 'always';
  if (eventType.startsWith('xstate.after.')) return 'after';
  if (eventType.startsWith('xstate.done.')) return 'done';
  if (eventType.startsWith('xstate.error.')) return 'error';
  return 'on';
}

function delayMs(delay: string | number, delays: Record<string, unknown>): number | null {
  if (typeof delay === 'number') return delay;
  const value = delays[delay];
  return typeof value === 'number' ? value : null;
}

function eventLabel(eventType: string, kind: TreeTransition['kind'], delay: string | number | undefined, delays: Record<string, unknown>): string {
  if (kind === 'always') return 'always';
  if (kind === 'after' && delay !== undefined) {
    if (typeof delay === 'number') return `after ${delay} ms`;
    const ms = delayMs(delay, delays);
    return ms === null ? `after ${delay}` : `after ${delay} (${ms} ms)`;
  }
  return eventType
    .replace(/^xstate\.done\.actor\.(.*)$/, 'done $1')
    .replace(/^xstate\.error\.actor\.(.*)$/, 'error $1')
    .replace(/^xstate\.done\.state\.(.*)$/, 'done state $1');
}

function uniqueName(names: Set<string>, t: TreeTransition): string {
  const base = `${t.source}: ${t.label}${t.guard ? ` [${t.guard}]` : ''} → ${t.targets.length > 0 ? t.targets.join(', ') : '(stays)'}`;
  let name = base;
  for (let n = 2; names.has(name); n++) name = `${base} #${n}`;
  names.add(name);
  return name;
}

/** `after` is implemented by a delayed raise on entry and its cancel on exit: the diagram draws the edge instead. */
function isAfterPlumbing(action: unknown): boolean {
  const { type, id, sendId } = action as { type?: unknown; id?: unknown; sendId?: unknown };
  if (type === 'xstate.raise') return typeof id === 'string' && id.startsWith('xstate.after.');
  if (type === 'xstate.cancel') return typeof sendId === 'string' && sendId.startsWith('xstate.after.');
  return false;
}

/** A guard by name: `isAction(action=route)`, `and(isReportedDown, canFallBack)`. */
export function guardLabel(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const { guards, type } = guard as { guards?: unknown[]; type?: unknown };
    const name = guard.name && guard.name !== 'guard' ? guard.name : typeof type === 'string' ? type : 'inline';
    return Array.isArray(guards) ? `${name}(${guards.map(guardLabel).join(', ')})` : name;
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    const { type, params } = guard as { type: unknown; params?: unknown };
    return withParams(String(type), params);
  }
  return 'inline';
}

/** An action by name: `emitProcessing(key=analysing)`; built-ins by their type (`xstate.assign`). */
export function actionLabel(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') {
    const { type } = action as { type?: unknown };
    return typeof type === 'string' ? type : action.name || 'inline';
  }
  if (typeof action === 'object' && action !== null && 'type' in action) {
    const { type, params } = action as { type: unknown; params?: unknown };
    return withParams(String(type), params);
  }
  return 'inline';
}

function withParams(name: string, params: unknown): string {
  if (typeof params !== 'object' || params === null) return name;
  const args = Object.entries(params).map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
  return args.length > 0 ? `${name}(${args.join(', ')})` : name;
}

/** A guard or action as JSON: named ones as their name (with params), combinators with their parts, inline ones by type. */
function jsonRef(value: unknown): JsonRef {
  if (typeof value === 'string') return value;
  if (typeof value === 'function') {
    const { guards, type } = value as { guards?: unknown[]; type?: unknown };
    if (Array.isArray(guards)) return { type: value.name || 'guard', guards: guards.map(jsonRef) };
    return typeof type === 'string' ? type : value.name || 'inline';
  }
  if (typeof value === 'object' && value !== null && 'type' in value) {
    const { type, params } = value as { type: unknown; params?: unknown };
    return params === undefined ? String(type) : { type: String(type), params: JSON.parse(JSON.stringify(params)) as unknown };
  }
  return 'inline';
}
