import type { Store } from '../actors/store/store.js';
import { createToolRegistry } from '../actors/tools/create-tool-registry.js';
import { toolPayload } from '../actors/tools/tool-result.js';
import type { Config } from '../config/config-schema.js';
import type { Messages } from '../prompts/messages.js';
import type { ToolRunner } from './create-job-actors.js';

/** The tool registry as the job machine's `runTool` sees it: outcomes with the payload already cut. */
export function createToolRunner(options: { store: Store; config: Config; messages: Messages; now: () => Date }): ToolRunner {
  const registry = createToolRegistry({ store: options.store, config: options.config, messages: options.messages, now: options.now });
  return {
    async run({ tool, operation, params }, signal) {
      const result = await registry.run(tool, operation, params, signal);
      if (!result.ok) return result;
      return { ok: true, data: result.data, summary: result.summary, payload: toolPayload(result.data), sources: result.sources ?? [] };
    },
  };
}
