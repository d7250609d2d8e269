/**
 * Text PostgreSQL can store. `text` columns refuse U+0000 and jsonb refuses it and lone surrogates
 * (`\ud800` in JSON), while both occur in what users and models send. User text with U+0000 is refused
 * at the door; everything else is made storable here, the same way for every path, so what a client sees
 * live is exactly what the journal replays.
 */

/** `text` with lone surrogates and U+0000 replaced by U+FFFD. */
export function storableText(text: string): string {
  const wellFormed = text.isWellFormed() ? text : text.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '\uFFFD') : wellFormed;
}

/**
 * `value` with every string in it (keys included) made storable: the value itself when nothing needed
 * it (the common case: no copy on the hot path), else a cleaned copy.
 */
export function storableData<T>(value: T): T {
  return isStorable(value) ? value : clean(value);
}

function isStorable(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\u0000');
  if (Array.isArray(value)) return value.every(isStorable);
  if (typeof value === 'object' && value !== null) return Object.entries(value).every(([key, item]) => isStorable(key) && isStorable(item));
  return true;
}

function clean<T>(value: T): T {
  if (typeof value === 'string') return storableText(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => clean(item)) as T;
  if (typeof value === 'object' && value !== null) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) copy[storableText(key)] = clean(item);
    return copy as T;
  }
  return value;
}

/** True when `text` holds something PostgreSQL text cannot store at all (U+0000). */
export function hasNul(text: string): boolean {
  return text.includes('\u0000');
}
