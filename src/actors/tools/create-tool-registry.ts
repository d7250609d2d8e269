/**
 * The tool registry (DESIGN §6): one `run(tool, operation, params, signal)` for every tool. Each call
 * goes through the same gates — known tool, the tool's guard (configured? refused?), known operation,
 * params valid by zod — and then runs raced against a timeout. `run` never rejects: every outcome is
 * a {@link ToolResult}, so the job machine branches on data instead of catching.
 */
import type { Config } from '../../config/config-schema.js';
import { fillTemplate, type Messages } from '../../prompts/messages.js';
import { createCalDavConnection, type CalendarConnection } from './caldav-connection.js';
import { createCalendarTools } from './calendar-tools.js';
import { createDocumentTools, type DocumentReader } from './document-tools.js';
import { createEmailTools } from './email-tools.js';
import type { ToolDefinition } from './tool-operation.js';
import { ToolError, toolFailure, type ToolResult } from './tool-result.js';

/** How long one tool call may take (DESIGN §6). */
export const TOOL_TIMEOUT_MS = 10_000;

/** Dependencies and knobs of {@link createToolRegistry}. */
export interface ToolRegistryOptions {
  store: DocumentReader;
  config: Pick<Config, 'tools'>;
  /** The fixed sentences in the persona's locale (`prompts.messages()`). */
  messages: Messages;
  /** Clock handed to operations (relative dates); default the system clock. */
  now?: () => Date;
  /** Per-call limit (default {@link TOOL_TIMEOUT_MS}); tests shorten it. */
  timeoutMs?: number;
  /** Hosts the tools may connect to (`egress.allowHosts`); default none. */
  allowHosts?: readonly string[];
  /** The persona's IANA zone: what the calendar's dates and times mean (default `UTC`). */
  timeZone?: string;
  /** The calendar's server connection; default one made from `config.tools.calendar` when that is set. */
  calendarConnection?: CalendarConnection;
  /** Told things an operator should know that are not failures (which calendar is used). */
  onNotice?: (message: string) => void;
  /** Tools added to (or replacing) the built-in ones, by name: tests inject slow or failing tools here. */
  extraTools?: Readonly<Record<string, ToolDefinition>>;
  /**
   * Told about exceptions thrown by an operation, which reach the caller only as `tool_failed`. For
   * logging; the error may hold message bodies, so log its type, not its text.
   */
  onError?: (error: unknown, call: { tool: string; operation: string; jobId?: string }) => void;
}

/** Runs tools. */
export interface ToolRegistry {
  /**
   * Runs `tool.operation(params)`. Never rejects. `signal` cancels the call (result `cancelled`); the
   * operation's own signal is also aborted at the timeout, so its I/O stops too.
   */
  run(tool: string, operation: string, params: unknown, signal?: AbortSignal, jobId?: string): Promise<ToolResult>;
  /** `tool.operation` names, for diagnostics and tests. */
  operations(): string[];
  /** Closes the tools' connections (the calendar's); calls after it fail. */
  close(): Promise<void>;
}

/** Builds the registry over the store and the tools configuration. */
export function createToolRegistry(options: ToolRegistryOptions): ToolRegistry {
  const { messages } = options;
  const now = options.now ?? (() => new Date());
  const timeoutMs = options.timeoutMs ?? TOOL_TIMEOUT_MS;
  const calendarSettings = options.config.tools.calendar;
  const calendarConnection =
    options.calendarConnection ??
    (calendarSettings === null
      ? null
      : createCalDavConnection(calendarSettings, {
          allowHosts: options.allowHosts ?? [],
          ...(options.onNotice ? { onNotice: options.onNotice } : {}),
        }));
  // One IMAP connection for the registry's life, closed with it.
  const email = createEmailTools(options.config.tools.email, messages);
  const tools: Readonly<Record<string, ToolDefinition>> = {
    calendar: createCalendarTools({ connection: calendarConnection, timeZone: options.timeZone ?? 'UTC', messages }),
    email,
    document: createDocumentTools(options.store, options.config.tools.documents.enabled, messages),
    ...options.extraTools,
  };

  return {
    async run(tool, operation, params, signal, jobId) {
      // Own-property lookups only: a model naming `__proto__` or `toString` is an unknown tool.
      const definition = Object.hasOwn(tools, tool) ? tools[tool] : undefined;
      if (definition === undefined) return toolFailure('unknown_tool', messages.tools.unknownTool);
      const refusal = definition.guard?.(operation) ?? null;
      if (refusal !== null) return refusal;
      const op = Object.hasOwn(definition.operations, operation) ? definition.operations[operation] : undefined;
      if (op === undefined) return toolFailure('unknown_tool', messages.tools.unknownTool);

      const prepared = op.prepare(params);
      if (!prepared.ok) {
        const details = `${tool}.${operation}: ${prepared.problems.join('; ')}`;
        return toolFailure('bad_tool_params', fillTemplate(messages.tools.badParams, { details }));
      }
      if (signal?.aborted) return cancelled(messages);

      const controller = new AbortController();
      let settleCancelled = (): void => undefined;
      const whenCancelled = new Promise<ToolResult>((resolve) => {
        settleCancelled = () => resolve(cancelled(messages));
      });
      // One listener, removed below, so a long-lived job signal does not collect one per call.
      const stop = (): void => {
        controller.abort();
        settleCancelled();
      };
      signal?.addEventListener('abort', stop, { once: true });
      let timer: NodeJS.Timeout | undefined;
      try {
        const result = await Promise.race([
          // Async wrapper: an operation that throws before returning its promise is still `tool_failed`.
          (async () => prepared.run({ signal: controller.signal, now: now() }))().catch((error: unknown) => {
            // Aborted by the timeout or a cancel: the race is already decided, and that outcome is the one told.
            if (controller.signal.aborted) return cancelled(messages);
            options.onError?.(error, { tool, operation, ...(jobId === undefined ? {} : { jobId }) });
            if (error instanceof ToolError) return toolFailure(error.reason, error.userMessage);
            return toolFailure('tool_failed', messages.tools.failed);
          }),
          new Promise<ToolResult>((resolve) => {
            timer = setTimeout(() => resolve(toolFailure('tool_timeout', messages.tools.timeout)), timeoutMs);
          }),
          whenCancelled,
        ]);
        // Extra tools may build failures by hand: the reason still has to meet the contract.
        return result.ok ? result : toolFailure(result.reason, result.message);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', stop);
        // Whatever ended the race, the operation's I/O has no one waiting for it any more.
        controller.abort();
      }
    },

    close: async () => {
      await Promise.all([calendarConnection?.close(), email.close()]);
    },

    operations: () =>
      Object.entries(tools).flatMap(([tool, definition]) =>
        Object.keys(definition.operations).map((operation) => `${tool}.${operation}`),
      ),
  };
}

function cancelled(messages: Messages): ToolResult {
  return toolFailure('cancelled', messages.errors.cancelled);
}
