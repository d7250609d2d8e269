import type { Config } from '../config/config-schema.js';
import { PROMPT_TOOLS, type PromptTool } from './load-prompts.js';

/** The tools the classifier is offered: those configured (`tools.calendar`, `tools.email`, `tools.documents.enabled`). */
export function offeredTools(tools: Config['tools']): PromptTool[] {
  const configured: Record<PromptTool, boolean> = {
    calendar: tools.calendar !== null,
    email: tools.email !== null,
    document: tools.documents.enabled,
  };
  return PROMPT_TOOLS.filter((tool) => configured[tool]);
}
