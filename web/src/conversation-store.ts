/** Where an answer stands: `sending` until the gateway accepts its chat, `running` until a terminal event. */
export type AnswerState = 'sending' | 'running' | 'done' | 'error' | 'cancelled';

export interface UserMessage {
  role: 'user';
  /** The chat's `clientMsgId`; its answer has the same id. */
  id: string;
  text: string;
}

export interface AnswerMessage {
  role: 'assistant';
  id: string;
  state: AnswerState;
  jobId: string | null;
  /** The last event seq applied: a resubscribe asks for the ones after it, and a replayed one is skipped. */
  lastSeq: number;
  /** The `result` chunks so far. */
  text: string;
  /** The latest `queued`/`processing` notice, a sentence; cleared once the answer streams. */
  notice: string | null;
  /** Why it failed or was refused, a sentence. */
  error: string | null;
  sources: Array<{ id: string; title: string }>;
  /** A tool draft waiting for the user's yes or no. */
  draft: Record<string, unknown> | null;
  /** The user already answered the draft with a button. */
  draftAnswered: boolean;
}

export type Message = UserMessage | AnswerMessage;

/** What the page keeps of a conversation: its id (once the gateway made one) and the messages shown. */
export interface Conversation {
  conversationId: string | null;
  messages: Message[];
}

/** What the store uses of `localStorage` (narrow, so the page's logic also runs in Node tests). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A conversation longer than this keeps its latest messages only (localStorage holds a few MB). */
const MAX_MESSAGES = 400;

/**
 * The conversation in `localStorage`, so a reload shows it and continues it (and resumes a running
 * answer). One key; `clear` removes it.
 */
export class ConversationStore {
  constructor(
    private readonly storage: KeyValueStorage,
    private readonly key = 'switchboard.conversation',
  ) {}

  load(): Conversation {
    try {
      const raw = this.storage.getItem(this.key);
      if (raw !== null) {
        const value = JSON.parse(raw) as Partial<Conversation>;
        if (Array.isArray(value.messages)) {
          return { conversationId: typeof value.conversationId === 'string' ? value.conversationId : null, messages: value.messages };
        }
      }
    } catch {
      // Unreadable (another version, a hand edit): start afresh rather than fail to load.
    }
    return { conversationId: null, messages: [] };
  }

  save(conversation: Conversation): void {
    const messages = conversation.messages.slice(-MAX_MESSAGES);
    try {
      this.storage.setItem(this.key, JSON.stringify({ conversationId: conversation.conversationId, messages }));
    } catch {
      // Storage full or disabled: the page still works, it only forgets on reload.
    }
  }

  clear(): void {
    this.storage.removeItem(this.key);
  }
}

/** A new user message and its (not yet accepted) answer. */
export function newExchange(id: string, text: string): [UserMessage, AnswerMessage] {
  return [
    { role: 'user', id, text },
    { role: 'assistant', id, state: 'sending', jobId: null, lastSeq: 0, text: '', notice: null, error: null, sources: [], draft: null, draftAnswered: false },
  ];
}

export function isAnswer(message: Message): message is AnswerMessage {
  return message.role === 'assistant';
}
