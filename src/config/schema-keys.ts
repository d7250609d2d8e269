import type { z } from 'zod';

/** A zod schema seen through its definition, enough to walk to the object beneath wrappers. */
type AnySchema = z.core.$ZodType;

/**
 * The object schema beneath `optional`, `nullable`, `default`, `prefault` and pipes (a `.transform()`'s
 * input side), or null when there is none.
 */
export function unwrapObject(schema: AnySchema): z.core.$ZodObject | null {
  let current: AnySchema | undefined = schema;
  for (let depth = 0; current && depth < 16; depth += 1) {
    const def = current._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema };
    if (def.type === 'object') return current as z.core.$ZodObject;
    current = def.innerType ?? def.in;
  }
  return null;
}

/** The value schema of a record beneath wrappers, or null. */
function unwrapRecord(schema: AnySchema): AnySchema | null {
  let current: AnySchema | undefined = schema;
  for (let depth = 0; current && depth < 16; depth += 1) {
    const def = current._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema; valueType?: AnySchema };
    if (def.type === 'record') return def.valueType ?? null;
    current = def.innerType ?? def.in;
  }
  return null;
}

/** The schema at `path` inside `root` (record keys are any name), or null when the path leaves it. */
export function schemaAt(root: AnySchema, path: readonly PropertyKey[]): AnySchema | null {
  let current: AnySchema | null = root;
  for (const segment of path) {
    if (current === null) return null;
    const object = unwrapObject(current);
    if (object) {
      current = (object._zod.def.shape as Record<string, AnySchema>)[String(segment)] ?? null;
      continue;
    }
    current = unwrapRecord(current);
  }
  return current;
}

/** The keys an object at `path` may have, in the schema's order (empty when it is not an object). */
export function allowedKeysAt(root: AnySchema, path: readonly PropertyKey[]): string[] {
  const schema = schemaAt(root, path);
  const object = schema ? unwrapObject(schema) : null;
  return object ? Object.keys(object._zod.def.shape) : [];
}

/** The allowed key a mistyped one most likely meant: a small edit away, or one containing the other. */
export function closestKey(key: string, allowed: readonly string[]): string | null {
  const typed = key.toLowerCase();
  let best: { key: string; distance: number } | null = null;
  for (const candidate of allowed) {
    const lower = candidate.toLowerCase();
    const distance = lower === typed ? 0 : editDistance(typed, lower);
    const limit = Math.max(1, Math.min(3, Math.floor(candidate.length / 3)));
    const near = distance <= limit || (typed.length >= 3 && (lower.startsWith(typed) || typed.startsWith(lower)));
    if (near && (best === null || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key ?? null;
}

/** Levenshtein distance, with a transposition counted as one edit (Damerau, optimal string alignment). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = value;
    }
  }
  return rows[a.length]![b.length]!;
}
