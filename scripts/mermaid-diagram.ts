import type { StateTree, TreeState, TreeTransition } from './state-tree.js';

/**
 * A machine's state tree as a Mermaid `stateDiagram-v2`: nested and parallel states, initial and final
 * markers, entry/exit actions and invoked actors, and every transition (`always`, `after` with its delay,
 * `done`/`error` of invokes) with its guard and actions.
 *
 * Mermaid refuses a description on a composite state ("Group nodes can only have label"), so a
 * composite's entry/exit/invoke lines go into a note beside it. The root's transitions hold in every
 * state: one with a target is drawn from each top-level state it can leave (not from a made-up "any
 * state" node); the root's action-only transitions are listed in a note.
 */
export function treeToMermaid(tree: StateTree): string {
  const lines = ['stateDiagram-v2'];
  const mermaidId = new Map<string, string>();
  const idOf = (stateId: string): string => mermaidId.get(stateId) ?? stateId;
  const register = (state: TreeState): void => {
    mermaidId.set(state.id, state.path.length === 0 ? tree.id : state.path.join('_'));
    state.children.forEach(register);
  };
  register(tree.root);

  const { root } = tree;
  if (root.children.length === 0) {
    // A machine without child states (the supervisor): it is its one state.
    lines.push(`  state "${root.key}" as ${idOf(root.id)}`, `  [*] --> ${idOf(root.id)}`);
    lines.push(...describe(root).map((text) => `  ${idOf(root.id)} : ${text}`));
  } else {
    renderChildren(root, '  ', lines, idOf);
  }

  const edges = new EdgeList();
  const rootNotes: string[] = [];
  const walk = (state: TreeState): void => {
    for (const transition of state.transitions) {
      if (state === root && root.children.length > 0) {
        if (transition.targets.length === 0) rootNotes.push(transitionText(transition));
        else for (const child of root.children) if (child.type !== 'final') edges.add(child.id, transition);
      } else {
        edges.add(state.id, transition);
      }
    }
    state.children.forEach(walk);
  };
  walk(root);
  for (const { from, to, labels } of edges.list()) lines.push(`  ${idOf(from)} --> ${idOf(to)} : ${labels.join('<br/>')}`);
  if (rootNotes.length > 0 && root.initial !== null) {
    lines.push(`  note left of ${idOf(root.initial)}`, `    In every state:`, ...rootNotes.map((text) => `    ${text}`), '  end note');
  }
  return `${lines.join('\n')}\n`;
}

function renderChildren(state: TreeState, indent: string, lines: string[], idOf: (id: string) => string): void {
  state.children.forEach((child, index) => {
    if (state.type === 'parallel' && index > 0) lines.push(`${indent}--`);
    const id = idOf(child.id);
    const details = describe(child);
    if (child.children.length > 0) {
      lines.push(`${indent}state "${child.key}" as ${id} {`);
      renderChildren(child, `${indent}  `, lines, idOf);
      lines.push(`${indent}}`);
      if (details.length > 0) lines.push(`${indent}note right of ${id}`, ...details.map((text) => `${indent}  ${text}`), `${indent}end note`);
    } else {
      lines.push(`${indent}state "${child.key}" as ${id}`);
      lines.push(...details.map((text) => `${indent}${id} : ${text}`));
    }
    if (child.type === 'final') lines.push(`${indent}${id} --> [*]`);
  });
  if (state.initial !== null) lines.push(`${indent}[*] --> ${idOf(state.initial)}`);
}

/** What happens in a state besides its transitions: entry and exit actions, invoked actors. */
export function describe(state: TreeState): string[] {
  const out: string[] = [];
  if (state.entry.length > 0) out.push(`entry / ${state.entry.join(', ')}`);
  for (const invoke of state.invokes) out.push(`invoke ${invoke.src}`);
  if (state.exit.length > 0) out.push(`exit / ${state.exit.join(', ')}`);
  return out;
}

/** `event [guard] / actions`, as on a transition arrow. */
export function transitionText(transition: TreeTransition): string {
  const guard = transition.guard ? ` [${transition.guard}]` : '';
  const actions = transition.actions.length > 0 ? ` / ${transition.actions.join(', ')}` : '';
  const reenter = transition.reenter ? ' (re-enter)' : '';
  return `${transition.label}${guard}${actions}${reenter}`;
}

/** One arrow: the transitions from one state to another. */
export interface Edge {
  from: string;
  to: string;
  labels: string[];
  transitions: TreeTransition[];
}

/**
 * Arrows by (from, to), in the order first drawn: transitions between the same two states share one
 * arrow with a line each, so no two arrows and labels lie on top of each other.
 */
export class EdgeList {
  private readonly edges = new Map<string, Edge>();

  add(from: string, transition: TreeTransition): void {
    for (const to of transition.targets.length > 0 ? transition.targets : [from]) {
      const key = `${from}\u0000${to}`;
      const edge = this.edges.get(key) ?? { from, to, labels: [], transitions: [] };
      edge.labels.push(transitionText(transition));
      edge.transitions.push(transition);
      this.edges.set(key, edge);
    }
  }

  list(): Edge[] {
    return [...this.edges.values()];
  }
}
