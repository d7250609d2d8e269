/**
 * The WebSocket frames the page uses (DESIGN §4, docs/websocket.md), as a client sees them. The page is
 * a client like any other: it reads the public protocol, not the gateway's modules.
 */

export type ClientFrame =
  | { type: 'chat'; text: string; clientMsgId: string; conversationId?: string }
  | { type: 'cancel'; jobId: string }
  | { type: 'subscribe'; jobId: string; afterSeq: number }
  | { type: 'status' };

export interface AcceptedFrame {
  type: 'accepted';
  jobId: string;
  conversationId: string;
  clientMsgId?: string;
}

export interface EventFrame {
  type: 'event';
  jobId: string;
  seq: number;
  event: string;
  data: Record<string, unknown>;
}

export interface BackendStatus {
  state: string;
  load: string;
  reason?: string;
  queue?: { waiting: number; running: number };
}

export interface StatusFrame {
  type: 'status';
  backends: Record<string, BackendStatus>;
  jobs: { active: number; pending: number };
}

export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  clientMsgId?: string;
}

export type ServerFrame = AcceptedFrame | EventFrame | StatusFrame | ErrorFrame | { type: 'pong' };

/** The events that end a job; exactly one comes, last. */
export const TERMINAL_EVENTS: ReadonlySet<string> = new Set(['done', 'error', 'cancelled']);

/** A server frame read from text, or null when it is not one this page knows. */
export function parseServerFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || typeof (value as { type?: unknown }).type !== 'string') return null;
  return value as ServerFrame;
}
