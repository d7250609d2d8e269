/**
 * What the job does with a message (DESIGN §6): answer directly, route to the reasoner, ask back, use
 * a tool, report the system status, or confirm or drop a pending draft. The classifier model produces
 * the first four as JSON; the pre-route rules produce all seven. Model output is untrusted text, so
 * {@link parseClassification} never throws: whatever it cannot use becomes a `direct` answer.
 */
import { z } from 'zod';

const response = z.string().trim().min(1);

const toolsSchema = z.strictObject({
  action: z.literal('tools'),
  tool: z.string().min(1),
  operation: z.string().min(1),
  params: z.record(z.string(), z.unknown()),
});

/** Every classification the job machine branches on. */
export const classificationSchema = z.discriminatedUnion('action', [
  /** Without `response` the classifier backend streams an answer itself. */
  z.strictObject({ action: z.literal('direct'), response: response.optional() }),
  z.strictObject({ action: z.literal('route') }),
  z.strictObject({ action: z.literal('clarify'), response }),
  toolsSchema,
  z.strictObject({ action: z.literal('systemStatus') }),
  /** The user's own yes to a pending draft (pre-route only: a model's word never confirms). */
  z.strictObject({ action: z.literal('confirmDraft') }),
  z.strictObject({ action: z.literal('cancelDraft') }),
]);

export type Classification = z.infer<typeof classificationSchema>;
export type ClassificationAction = Classification['action'];
/** A classification that calls a tool. */
export type ToolCall = z.infer<typeof toolsSchema>;

/**
 * The model's JSON, read leniently: small models write `"Direct"`, `"params": null`, params as a JSON
 * string (as OpenAI tool calls do) or `"tool": "calendar.today"` without an operation.
 */
const modelOutputSchema = z.object({
  action: z.string().trim().toLowerCase().catch(''),
  response: z.string().trim().optional().catch(undefined),
  tool: z.string().trim().optional().catch(undefined),
  operation: z.string().trim().optional().catch(undefined),
  params: z
    .preprocess(
      (value) => (typeof value === 'string' ? tryJson(value) : (value ?? {})),
      z.record(z.string(), z.unknown()),
    )
    .catch({}),
});

type ModelOutput = z.infer<typeof modelOutputSchema>;

/**
 * Reads the classifier's answer: the outermost `{…}` (first `{` to last `}`) parsed as JSON and
 * validated; `clarify` without a question and `tools` without tool or operation become `direct`.
 * Text that holds no usable JSON becomes `direct` with the text (code fences, backticks and
 * `<think>` blocks removed) as the answer, or without an answer when nothing is left.
 */
export function parseClassification(raw: string): Classification {
  // Reasoning models may think aloud first; braces in there would spoil the extraction.
  const text = raw.replace(/<think>[\s\S]*?(<\/think>|$)/gi, '').trim();
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start >= 0 && end > start) {
    const json = tryJson(text.slice(start, end + 1));
    // An object with neither field is not an answer to our task (prose that quotes some JSON, say).
    if (isRecord(json) && ('action' in json || 'response' in json)) {
      const output = modelOutputSchema.safeParse(json);
      if (output.success) return fromModel(output.data);
    }
  }
  return fromText(text);
}

function fromModel(output: ModelOutput): Classification {
  const answer = output.response === '' ? undefined : output.response;
  switch (output.action) {
    case 'route':
      return { action: 'route' };
    case 'clarify':
      return answer === undefined ? { action: 'direct' } : { action: 'clarify', response: answer };
    case 'tools':
    case 'tool': {
      const call = toolCall(output);
      if (call !== null) return call;
      break;
    }
  }
  // `direct`, and everything the model should not have said (unknown actions, no action at all).
  return answer === undefined ? { action: 'direct' } : { action: 'direct', response: answer };
}

function toolCall(output: ModelOutput): ToolCall | null {
  let tool = output.tool ?? '';
  let operation = output.operation ?? '';
  if (operation === '' && tool.includes('.')) {
    const dot = tool.indexOf('.');
    operation = tool.slice(dot + 1);
    tool = tool.slice(0, dot);
  }
  if (tool === '' || operation === '') return null;
  return { action: 'tools', tool, operation, params: output.params };
}

/** The text as a direct answer, unless it is a JSON object too broken to parse. */
function fromText(text: string): Classification {
  const cleaned = text
    .replace(/```[a-z]*/gi, '')
    .replace(/`/g, '')
    .trim();
  if (cleaned.startsWith('{')) {
    // Truncated or malformed JSON: never show it to the user; keep its answer if one can be read.
    const answer = brokenJsonResponse(cleaned);
    return answer === undefined ? { action: 'direct' } : { action: 'direct', response: answer };
  }
  return cleaned === '' ? { action: 'direct' } : { action: 'direct', response: cleaned };
}

function brokenJsonResponse(text: string): string | undefined {
  const match = /"response"\s*:\s*"((?:[^"\\]|\\.)*)/.exec(text);
  if (match === null) return undefined;
  const value = tryJson(`"${match[1] ?? ''}"`);
  const answer = typeof value === 'string' ? value.trim() : '';
  return answer === '' ? undefined : answer;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
