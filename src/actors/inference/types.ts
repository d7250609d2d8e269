/**
 * The shapes of OpenAI-compatible chat completions as Switchboard uses them. Machines import only
 * these types; the undici implementation lives in `openai-client.ts`.
 */

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

/** One chat completion request, without `model` and `stream` (the backend and the call decide those). */
export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  toolChoice?: 'auto' | 'none' | 'required';
  maxTokens?: number;
  temperature?: number;
}

/** The assembled answer of a completion, streamed or not. */
export interface ChatResult {
  content: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
}

/** What a backend's optional `statusUrl` reports. */
export interface BackendStatusReport {
  activeJobs: number;
  totalRequests: number;
}

export interface StreamOptions {
  signal: AbortSignal;
  /** Called once per content delta, in order. */
  onContent: (text: string) => void;
}

/**
 * A client for one OpenAI-compatible server. Every call takes an `AbortSignal`; every failure is one of
 * the coded errors in `src/errors.ts`.
 */
export interface InferenceClient {
  /** Non-streaming completion (`stream: false`). */
  complete(request: ChatRequest, signal: AbortSignal): Promise<ChatResult>;
  /** Streaming completion; resolves with the assembled result once the stream ends. */
  stream(request: ChatRequest, options: StreamOptions): Promise<ChatResult>;
  /** `GET {baseUrl}/models`: the model ids the server offers. Used as the health probe. */
  listModels(signal: AbortSignal): Promise<string[]>;
  /** `GET statusUrl` when configured, else `null`. */
  fetchStatus(signal: AbortSignal): Promise<BackendStatusReport | null>;
}
