/**
 * Pure pieces of the ReAct loop (`src/machines/react-machine.ts`): the `search` tool as the model sees
 * it, the requests of each round, what a tool call asks for and what goes back to the model.
 */
import type { ChatMessage, ChatRequest, ToolCall, ToolDefinition } from '../actors/inference/types.js';

/** Tool rounds before the final round (seed 003: two searches at most, then an answer). */
export const MAX_TOOL_ROUNDS = 2;

/** Searches run per round; further calls in the same round are answered with an error, not run. */
export const MAX_CALLS_PER_ROUND = 3;

/** The one tool the loop offers: the document tool's `search` operation. */
export const SEARCH_TOOL: ToolDefinition = {
  type: 'function',
  function: {
    name: 'search',
    description: 'Search the saved documents. Returns up to 5 matches with their id, title and a snippet.',
    parameters: {
      type: 'object',
      properties: { query: { type: 'string', description: 'A few key words to look for.' } },
      required: ['query'],
    },
  },
};

/** A document a search turned up, as the `sources` event lists it. */
export interface Source {
  id: string;
  title: string;
}

/** A tool round: the model may call `search`. */
export function toolRoundRequest(messages: readonly ChatMessage[]): ChatRequest {
  return { messages: [...messages], tools: [SEARCH_TOOL], toolChoice: 'auto' };
}

/**
 * The final round: the tool stays described (the messages refer to it) but the model may not call it;
 * a server that calls it anyway has its calls ignored.
 */
export function finalRoundRequest(messages: readonly ChatMessage[]): ChatRequest {
  return { messages: [...messages], tools: [SEARCH_TOOL], toolChoice: 'none' };
}

/** The query a `search` call asks for; a call without a usable one searches for the user's message. */
export function searchQuery(call: ToolCall, fallback: string): string {
  try {
    const args: unknown = JSON.parse(call.function.arguments || '{}');
    if (typeof args === 'object' && args !== null && 'query' in args && typeof args.query === 'string' && args.query.trim() !== '') {
      return args.query.trim();
    }
  } catch {
    // Arguments that are not JSON: the message itself is the best query there is.
  }
  return fallback;
}

/** The tool message for a call that is not run: an unknown tool, or one call too many in a round. */
export function refusedCall(call: ToolCall, error: 'unknown_tool' | 'too_many_calls'): ChatMessage {
  return { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ error, tool: call.function.name }) };
}

/** `sources` followed by those of `found` not already listed (by id), in the order first seen. */
export function mergeSources(sources: readonly Source[], found: readonly Source[]): Source[] {
  const merged = [...sources];
  const seen = new Set(sources.map((source) => source.id));
  for (const source of found) {
    if (seen.has(source.id)) continue;
    seen.add(source.id);
    merged.push({ id: source.id, title: source.title });
  }
  return merged;
}
