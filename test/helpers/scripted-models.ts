import type { FakeBackend, FakeReply, FakeRequestBody } from '../fakes/fake-openai-backend.js';

/** The user text of a classifier request (`[message]` section), or null for another kind of request. */
export function classifiedText(body: FakeRequestBody): string | null {
  if (body.stream) return null;
  const content = String(body.messages.at(-1)?.content ?? '');
  const at = content.lastIndexOf('[message]\n');
  return content.startsWith('[now]') && at >= 0 ? content.slice(at + '[message]\n'.length) : null;
}

/** The last user message of a request. */
export function lastUserText(body: FakeRequestBody): string {
  return String(body.messages.at(-1)?.content ?? '');
}

export interface ScriptedModels {
  /** What the classifier answers for a message (its JSON, or any text). */
  classify: (text: string) => string | FakeReply;
  /** What the small model streams when it answers a message itself. */
  smallStream?: (text: string) => FakeReply;
  /** How the small model phrases a tool result. */
  phrase?: (content: string) => FakeReply;
  /** What the reasoner streams for a message. */
  reason?: (text: string) => FakeReply;
}

/** Scripts both fakes: the classifier/small model by request kind, the reasoner by message. */
export function scriptModels(small: FakeBackend, large: FakeBackend, script: ScriptedModels): void {
  small.setDefault((body) => {
    const text = classifiedText(body);
    if (text !== null) {
      const reply = script.classify(text);
      return typeof reply === 'string' ? { content: reply } : reply;
    }
    const last = lastUserText(body);
    if (!body.stream && last.startsWith('[request]')) return script.phrase?.(last) ?? { content: 'phrased' };
    return script.smallStream?.(last) ?? { content: ['small ', 'answer'] };
  });
  large.setDefault((body) => script.reason?.(lastUserText(body)) ?? { content: ['large ', 'answer'] });
}
