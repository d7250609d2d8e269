import { randomUUID } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import type { ChatRequest } from '../../src/actors/inference/types.js';
import type { BackendReply, BackendTerminalReply, Priority, RequestKind } from '../../src/machines/backend-protocol.js';

/** A real requester actor that records every reply it gets from a backend. */
export interface TestRequester {
  requestId: string;
  ref: AnyActorRef;
  replies: BackendReply[];
  /** Resolves with the terminal reply. */
  terminal: Promise<BackendTerminalReply>;
  /** Resolves once `infer.started` arrived. */
  started: Promise<void>;
  /** Concatenated chunks so far. */
  text(): string;
  cancel(): void;
  stop(): void;
}

const TERMINAL = new Set(['infer.done', 'infer.error', 'infer.cancelled']);

/** Starts a requester actor and sends its request to `backend`; the requester is stopped when the test ends. */
export function request(
  backend: AnyActorRef,
  chat: ChatRequest | string,
  options: { priority?: Priority; kind?: RequestKind; requestId?: string } = {},
): TestRequester {
  const requestId = options.requestId ?? randomUUID();
  const replies: BackendReply[] = [];
  let resolveTerminal!: (reply: BackendTerminalReply) => void;
  let resolveStarted!: () => void;
  const terminal = new Promise<BackendTerminalReply>((resolve) => (resolveTerminal = resolve));
  const started = new Promise<void>((resolve) => (resolveStarted = resolve));
  const ref = createActor(
    fromCallback<BackendReply>(({ receive }) => {
      receive((reply) => {
        replies.push(reply);
        if (reply.type === 'infer.started') resolveStarted();
        if (TERMINAL.has(reply.type)) resolveTerminal(reply as BackendTerminalReply);
      });
    }),
  ).start();
  onTestFinished(() => {
    ref.stop();
  });
  const body: ChatRequest = typeof chat === 'string' ? { messages: [{ role: 'user', content: chat }] } : chat;
  backend.send({
    type: 'infer.request',
    requestId,
    priority: options.priority ?? 'foreground',
    kind: options.kind ?? 'stream',
    request: body,
    replyTo: ref,
  });
  return {
    requestId,
    ref,
    replies,
    terminal,
    started,
    text: () => replies.map((r) => (r.type === 'infer.chunk' ? r.text : '')).join(''),
    cancel: () => backend.send({ type: 'infer.cancel', requestId }),
    stop: () => ref.stop(),
  };
}
