import type { Config } from '../config/config-schema.js';
import { parseClassification } from '../jobs/classification.js';
import { preRoute } from '../jobs/pre-route.js';
import type { JobMessageKey, JobToolkit } from '../machines/job-machine.js';
import type { Prompts } from '../prompts/load-prompts.js';
import { messageLocale } from '../prompts/message-locale.js';
import { fillTemplate, type Messages } from '../prompts/messages.js';

const MESSAGE_PATHS: Record<JobMessageKey, (m: Messages) => string> = {
  analysing: (m) => m.processing.analysing,
  generating: (m) => m.processing.generating,
  switchingModel: (m) => m.processing.switchingModel,
  reasonerBusy: (m) => m.processing.reasonerBusy,
  usingTool: (m) => fillTemplate(m.processing.usingTool, { tool: '' }).replace(/\s+/g, ' ').trim(),
  phrasing: (m) => m.processing.formattingResult,
  checkingStatus: (m) => m.processing.checkingStatus,
  noDraft: (m) => m.draft.noDraft,
  draftCancelled: (m) => m.draft.cancelled,
  confirmPrompt: (m) => m.draft.confirm,
  emptyAnswer: (m) => m.errors.noAnswer,
  backendUnavailable: (m) => m.errors.backendUnavailable,
  modelMissing: (m) => m.errors.modelMissing,
  answerTooLong: (m) => m.errors.answerTooLong,
  storeUnavailable: (m) => m.errors.storeUnavailable,
  internalError: (m) => m.errors.internal,
};

/**
 * The job machine's toolkit: composed prompts, fixed sentences, pre-route rules and clock, in the persona's
 * locale; `forMessage` gives the one in the language of a message (see `messageLocale`). Time is read in
 * `persona.timeZone`.
 */
export function createJobToolkit(options: {
  config: Config;
  prompts: Prompts;
  now: () => Date;
  reasonerTurns: number;
}): JobToolkit {
  const { config, prompts, now } = options;
  const timeZone = config.persona.timeZone;
  const byLocale = new Map<string, JobToolkit>();
  const toolkitFor = (locale: string): JobToolkit => {
    const cached = byLocale.get(locale);
    if (cached) return cached;
    const messages = prompts.messages(locale);
    const toolkit: JobToolkit = {
      systemPrompt: (task) => prompts.systemPrompt(task, locale),
      message: (key) => MESSAGE_PATHS[key](messages),
      preRoute: (text, hasPendingDraft, at) => preRoute(text, prompts.preRoute, { now: at, timeZone, hasPendingDraft }),
      parseClassification,
      now,
      timeZone,
      locale,
      historyBounds: { turns: config.limits.turns, totalChars: config.limits.totalChars },
      reasonerTurns: options.reasonerTurns,
      reasonerTools: Object.hasOwn(config.backends, config.roles.reasoner) && config.backends[config.roles.reasoner]?.tools === true,
      forMessage: (text) => toolkitFor(messageLocale(text, config.persona.locale)),
    };
    byLocale.set(locale, toolkit);
    return toolkit;
  };
  return toolkitFor(config.persona.locale);
}
