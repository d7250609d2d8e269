import { parseClassification } from '../../src/jobs/classification.js';
import { preRoute } from '../../src/jobs/pre-route.js';
import type { JobMessageKey, JobToolkit } from '../../src/machines/job-machine.js';
import type { Prompts } from '../../src/prompts/load-prompts.js';

/**
 * The toolkit a job machine driven directly in a test gets: the real prompts and pre-route rules, a
 * fixed clock in UTC, English, nothing busy. `message` names a sentence (its key, unless given).
 */
export function testToolkit(prompts: Prompts, message: (key: JobMessageKey) => string = (key) => key): JobToolkit {
  const timeZone = 'UTC';
  return {
    systemPrompt: (task) => prompts.systemPrompt(task),
    message,
    preRoute: (text, hasDraft, now) => preRoute(text, prompts.preRoute, { now, timeZone, hasPendingDraft: hasDraft }),
    parseClassification,
    now: () => new Date('2026-11-21T12:00:00Z'),
    timeZone,
    locale: 'en',
    historyBounds: { turns: 40, totalChars: 32_000 },
    reasonerTurns: 10,
  };
}
