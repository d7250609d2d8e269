import type { Store } from '../actors/store/store.js';
import { createToolRegistry } from '../actors/tools/create-tool-registry.js';
import { ToolError, toolPayload } from '../actors/tools/tool-result.js';
import type { Config } from '../config/config-schema.js';
import type { Logger } from 'pino';
import type { Messages } from '../prompts/messages.js';
import type { ToolRunner } from './create-job-actors.js';

/**
 * The tool registry as the job machine's `runTool` sees it: outcomes with the payload already cut. A tool
 * that throws reaches the job as `tool_failed`; it is logged here, once, with the job id — its type, not
 * its text, which may quote what the tool was given.
 */
export function createToolRunner(options: { store: Store; config: Config; messages: Messages; now: () => Date; log: Logger }): ToolRunner & { close(): Promise<void> } {
  const registry = createToolRegistry({
    store: options.store,
    config: options.config,
    messages: options.messages,
    now: options.now,
    allowHosts: options.config.egress.allowHosts,
    timeZone: options.config.persona.timeZone,
    onNotice: (message) => options.log.info(message),
    onError: (error, call) =>
      // A ToolError's detail is written to be logged (the server's answer in words, no credentials).
      error instanceof ToolError
        ? options.log.error({ ...call, reason: error.reason, cause: error.detail }, 'a tool failed')
        : options.log.error({ ...call, reason: 'tool_failed', errorType: error instanceof Error ? error.name : typeof error }, 'a tool failed'),
  });
  const calendar = options.config.tools.calendar;
  if (calendar?.passwordEnv !== undefined && !process.env[calendar.passwordEnv]) {
    // Said at start, not only at the first calendar call: the operator is there now.
    options.log.warn(
      { variable: calendar.passwordEnv },
      `tools.calendar.passwordEnv: the environment variable ${calendar.passwordEnv} is not set; calendar calls fail until the gateway is started with it`,
    );
  }
  return {
    async run({ tool, operation, params, jobId }, signal) {
      const result = await registry.run(tool, operation, params, signal, jobId);
      if (!result.ok && result.reason === 'tool_timeout') options.log.error({ tool, operation, jobId, reason: result.reason }, 'a tool timed out');
      if (!result.ok) return result;
      return { ok: true, data: result.data, summary: result.summary, payload: toolPayload(result.data), sources: result.sources ?? [] };
    },
    close: () => registry.close(),
  };
}
