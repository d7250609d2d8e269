/** Synology Chat takes at most this many characters in one post (DESIGN §5). */
export const SYNOLOGY_PART_CHARS = 2000;

const SENTENCE_END = /[.!?。！？…][)"'”’]*\s/g;

/**
 * Splits `text` into parts of at most `max` characters, in order, cutting at the last line break in the
 * window, else after the last sentence end, else at the last space, else at `max` (never inside a
 * surrogate pair). Joined back with nothing between them, the parts are `text` without the whitespace
 * at the cuts.
 */
export function splitMessage(text: string, max = SYNOLOGY_PART_CHARS): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  while (rest.length > max) {
    const window = rest.slice(0, max + 1);
    let cut = window.lastIndexOf('\n');
    if (cut < max / 4) {
      cut = -1;
      for (const match of window.slice(0, max).matchAll(SENTENCE_END)) cut = match.index + match[0].length - 1;
      if (cut < max / 4) cut = window.lastIndexOf(' ');
      if (cut < max / 4) {
        cut = max;
        const code = rest.charCodeAt(cut - 1);
        if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
      }
    }
    const part = rest.slice(0, cut).trimEnd();
    if (part.length > 0) parts.push(part);
    rest = rest.slice(cut).trimStart();
  }
  if (rest.length > 0) parts.push(rest);
  return parts;
}
