import { afterEach } from 'vitest';

/**
 * XState warns (in its development build, which vitest loads) when an event is sent to an actor that has
 * stopped: an event that is silently dropped. In this suite such a warning is a bug in the code under test
 * or a test that leaves actors running, so the test during which it was printed fails.
 */
const warnings: string[] = [];
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]): void => {
  const first = args[0];
  if (typeof first === 'string' && first.includes('was sent to stopped actor')) warnings.push(first.split('\n')[0]!);
  warn(...args);
};

afterEach(() => {
  if (warnings.length === 0) return;
  const seen = warnings.splice(0);
  throw new Error(`XState dropped ${seen.length} event(s) sent to stopped actors:\n${seen.join('\n')}`);
});
