/** Hangul syllables and jamo: a message with any of them is Korean. */
const HANGUL = /[\u1100-\u11FF\u3130-\u318F\uA960-\uA97F\uAC00-\uD7AF\uD7B0-\uD7FF]/u;

/**
 * The language a job answers a message in — its notices, error sentences and prompts: Korean when the
 * message has Hangul; otherwise the persona's locale, unless that is Korean, then English (a message
 * without Hangul was not written in Korean).
 */
export function messageLocale(text: string, personaLocale: string): string {
  if (HANGUL.test(text)) return 'ko';
  return personaLocale.toLowerCase().split(/[-_]/)[0] === 'ko' ? 'en' : personaLocale;
}
