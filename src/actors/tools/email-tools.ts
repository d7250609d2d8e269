/**
 * The email tool's operations (DESIGN §6): search and read only. Sending, replying and forwarding are
 * refused whatever the configuration — an assistant that can be talked into sending mail is a risk
 * the read-only use does not need. The IMAP implementation arrives in a later issue.
 */
import { z } from 'zod';
import type { Config } from '../../config/config-schema.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { defineOperation, type ToolDefinition } from './tool-operation.js';
import { dayCount, identifier, optional, required, text } from './tool-params.js';
import { toolFailure, type ToolResult } from './tool-result.js';

/** Operation names that would send mail in any form. */
const SENDING = /^(send|reply|forward)/i;

/** Params of `email.search`. */
export const emailSearchParams = z.object({
  query: optional(text('a query', 200)).transform((query) => query ?? ''),
  days: optional(dayCount()).transform((days) => days ?? 7),
  folder: optional(text('a folder name', 200)),
});

/** Params of `email.read`. */
export const emailReadParams = z.object({ uid: required(identifier('a message uid')) });

/** The email tool for `config.tools.email` (null = not configured). */
export function createEmailTools(email: Config['tools']['email'], messages: Messages): ToolDefinition {
  const notYet = async (): Promise<ToolResult> =>
    toolFailure('tool_unavailable', fillTemplate(messages.tools.toolUnavailable, { tool: 'email' }));
  return {
    guard(operation) {
      if (SENDING.test(operation)) return toolFailure('email_send_refused', messages.tools.emailSendRefused);
      return email === null ? toolFailure('tool_not_configured', messages.tools.emailNotConfigured) : null;
    },
    operations: {
      search: defineOperation(emailSearchParams, notYet),
      read: defineOperation(emailReadParams, notYet),
    },
  };
}
