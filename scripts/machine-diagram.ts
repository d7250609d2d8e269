import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * Renders a machine as a Mermaid `stateDiagram-v2`, walking `machine.root` so that `always`, `after` and
 * invoke `onDone`/`onError` edges all appear (the directed-graph helpers leave `always` out).
 */
export function machineToMermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const ids = new Map<AnyStateNode, string>();
  const idOf = (node: AnyStateNode): string => {
    let id = ids.get(node);
    if (!id) {
      id = node.path.length === 0 ? machine.id : node.path.join('_');
      ids.set(node, id);
    }
    return id;
  };

  const renderNode = (node: AnyStateNode, indent: string): void => {
    const children = Object.values(node.states) as AnyStateNode[];
    children.forEach((child, index) => {
      if (node.type === 'parallel' && index > 0) lines.push(`${indent}--`);
      const id = idOf(child);
      const nested = Object.keys(child.states).length > 0;
      const invokes = child.invoke.map((invoke) => String(invoke.src)).filter(Boolean);
      if (nested) {
        lines.push(`${indent}state "${child.key}" as ${id} {`);
        renderNode(child, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}state "${child.key}" as ${id}`);
      }
      if (invokes.length > 0) lines.push(`${indent}${id} : invoke ${invokes.join(', ')}`);
      if (child.type === 'final') lines.push(`${indent}${id} --> [*]`);
    });
    if (node.type === 'compound' && node.initial) {
      for (const target of node.initial.target as AnyStateNode[]) lines.push(`${indent}[*] --> ${idOf(target)}`);
    }
  };

  const edges: string[] = [];
  const collectEdges = (node: AnyStateNode): void => {
    for (const [eventType, transitions] of node.transitions) {
      for (const transition of transitions) edges.push(...edgeLines(node, eventType, transition));
    }
    for (const transition of node.always ?? []) edges.push(...edgeLines(node, 'always', transition));
    for (const child of Object.values(node.states) as AnyStateNode[]) collectEdges(child);
  };

  const edgeLines = (
    node: AnyStateNode,
    eventType: string,
    transition: { target?: readonly AnyStateNode[] | undefined; guard?: unknown; actions?: readonly unknown[] },
  ): string[] => {
    const label = edgeLabel(eventType, transition.guard);
    const targets = transition.target ?? [];
    if (targets.length === 0) {
      const actions = (transition.actions ?? []).map(actionName).filter(Boolean);
      return [`${idOf(node)} --> ${idOf(node)} : ${label}${actions.length > 0 ? ` / ${actions.join(', ')}` : ''}`];
    }
    return targets.map((target) => `${idOf(node)} --> ${idOf(target)} : ${label}`);
  };

  if (machine.root.type === 'parallel' || Object.keys(machine.root.states).length > 0) renderNode(machine.root, '  ');
  collectEdges(machine.root);
  // Transitions of the root apply in every state: draw them from one explicit "any state" node.
  if (edges.some((edge) => edge.startsWith(`${machine.id} `))) lines.push(`  state "(any state)" as ${machine.id}`);
  lines.push(...edges.map((edge) => `  ${edge}`));
  return `${lines.join('\n')}\n`;
}

function edgeLabel(eventType: string, guard: unknown): string {
  const event = eventType
    .replace(/^xstate\.after\.([^.]+)\..*$/, 'after $1')
    .replace(/^xstate\.done\.actor\.(.*)$/, 'done $1')
    .replace(/^xstate\.error\.actor\.(.*)$/, 'error $1')
    .replace(/^xstate\.done\.state\.(.*)$/, 'done state $1');
  const guardName = guardLabel(guard);
  return guardName ? `${event} [${guardName}]` : event;
}

function guardLabel(guard: unknown): string {
  if (!guard) return '';
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    const { type, params } = guard as { type: unknown; params?: Record<string, unknown> };
    const args = params ? Object.entries(params).map(([key, value]) => `${key}=${String(value)}`).join(', ') : '';
    return args ? `${String(type)}(${args})` : String(type);
  }
  if (typeof guard === 'function') {
    const check = (guard as { check?: unknown; guards?: unknown[] }).guards;
    const name = (guard as { name?: string }).name;
    if (Array.isArray(check)) return `${name ?? 'guard'}(${check.map(guardLabel).join(', ')})`;
    return name && name !== 'guard' ? name : 'guard';
  }
  return 'guard';
}

function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'object' && action !== null && 'type' in action) return String((action as { type: unknown }).type);
  return '';
}
