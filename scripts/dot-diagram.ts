import { describe, EdgeList, transitionText, type Edge } from './mermaid-diagram.js';
import type { StateTree, TreeState } from './state-tree.js';

/**
 * A machine's state tree as Graphviz DOT, for an SVG rendered offline: a composite state is a cluster
 * (its label says its entry/exit actions and invoked actors), with a dot inside for its initial state;
 * a transition of a composite state leaves the cluster's border (`ltail`), one into it reaches the
 * border (`lhead`). The root's transitions are drawn as in the Mermaid diagram: targeted ones from each
 * top-level state, action-only ones in a note.
 */
export function treeToDot(tree: StateTree): string {
  const lines = [
    `digraph ${quote(tree.id)} {`,
    '  graph [compound=true, fontname="Helvetica", fontsize=12, nodesep=0.35, ranksep=0.45, labeljust=l];',
    '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11, margin="0.12,0.06"];',
    '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
    `  ${quote(start(tree.root.id))} [shape=point, width=0.16, label=""];`,
  ];
  const states = new Map<string, TreeState>();
  const index = (state: TreeState): void => {
    states.set(state.id, state);
    state.children.forEach(index);
  };
  index(tree.root);
  const { root } = tree;

  if (root.children.length === 0) {
    lines.push(`  ${quote(root.id)} [label=${quote(label(root))}];`, `  ${quote(start(root.id))} -> ${quote(root.id)};`);
  } else {
    for (const child of root.children) renderState(child, '  ', lines);
    if (root.initial !== null) lines.push(`  ${quote(start(root.id))} -> ${anchor(states.get(root.initial)!)}${headAttrs(states.get(root.initial)!, '')};`);
  }

  const notes: string[] = [];
  const arrows = new EdgeList();
  const walk = (state: TreeState): void => {
    for (const transition of state.transitions) {
      if (state === root && root.children.length > 0) {
        if (transition.targets.length === 0) notes.push(transitionText(transition));
        else for (const child of root.children) if (child.type !== 'final') arrows.add(child.id, transition);
      } else {
        arrows.add(state.id, transition);
      }
    }
    state.children.forEach(walk);
  };
  walk(root);
  for (const arrow of arrows.list()) lines.push(edgeLine(arrow, states));
  if (notes.length > 0) {
    lines.push(`  ${quote(`${root.id}.__note`)} [shape=note, style="", fontsize=10, label=${quote(`In every state:\n${notes.join('\n')}`, 'l')}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function renderState(state: TreeState, indent: string, lines: string[]): void {
  if (state.children.length === 0) {
    const final = state.type === 'final' ? ', peripheries=2' : '';
    lines.push(`${indent}${quote(state.id)} [label=${quote(label(state))}${final}];`);
    return;
  }
  lines.push(`${indent}subgraph ${quote(cluster(state.id))} {`);
  lines.push(`${indent}  label=${quote(label(state), 'l')}; style="rounded${state.type === 'parallel' ? ',dashed' : ''}"; color="#555555";`);
  // A parallel state has no initial state: its dot is only where arrows attach, so it is not drawn.
  const dot = state.type === 'parallel' ? 'style=invis, width=0.01' : 'width=0.12';
  lines.push(`${indent}  ${quote(start(state.id))} [shape=point, ${dot}, label=""];`);
  for (const child of state.children) renderState(child, `${indent}  `, lines);
  if (state.initial !== null) {
    const initial = state.children.find((child) => child.id === state.initial)!;
    lines.push(`${indent}  ${quote(start(state.id))} -> ${anchor(initial)}${headAttrs(initial, '')};`);
  }
  lines.push(`${indent}}`);
}

function edgeLine(edge: Edge, states: Map<string, TreeState>): string {
  const from = states.get(edge.from)!;
  const to = states.get(edge.to)!;
  const kinds = new Set(edge.transitions.map((t) => t.kind));
  const style = kinds.size === 1 && kinds.has('always') ? ', style=dashed' : kinds.size === 1 && kinds.has('after') ? ', style=dotted' : '';
  // Actions on their own line keep the labels, and so the drawing, narrow.
  const attrs: string[] = [`label=${quote(edge.labels.map((text) => text.replace(' / ', '\n/ ')).join('\n'))}`];
  // A border is only clipped at when the other end is outside the cluster.
  if (from.children.length > 0 && !isWithin(to.id, from.id)) attrs.push(`ltail=${quote(cluster(from.id))}`);
  if (to.children.length > 0 && !isWithin(from.id, to.id)) attrs.push(`lhead=${quote(cluster(to.id))}`);
  return `  ${anchor(from)} -> ${anchor(to)} [${attrs.join(', ')}${style}];`;
}

/** The node an edge attaches to: the state itself, or a composite's initial dot. */
function anchor(state: TreeState): string {
  return quote(state.children.length > 0 ? start(state.id) : state.id);
}

function headAttrs(state: TreeState, extra: string): string {
  return state.children.length > 0 ? ` [lhead=${quote(cluster(state.id))}${extra}]` : '';
}

function isWithin(id: string, ancestor: string): boolean {
  return id === ancestor || id.startsWith(`${ancestor}.`);
}

function label(state: TreeState): string {
  return [state.key, ...describe(state)].join('\n');
}

const start = (id: string): string => `${id}.__initial`;
const cluster = (id: string): string => `cluster_${id}`;

/** A DOT string; `\n` becomes a centred line break, or left-aligned with `justify = 'l'`. */
function quote(text: string, justify: 'c' | 'l' = 'c'): string {
  const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return justify === 'l' ? `"${escaped.replace(/\n/g, '\\l')}\\l"` : `"${escaped.replace(/\n/g, '\\n')}"`;
}
