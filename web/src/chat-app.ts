import { applyEvent } from './apply-event.js';
import { ChatView } from './chat-view.js';
import { ConversationStore, isAnswer, newExchange, type AnswerMessage, type Conversation } from './conversation-store.js';
import { GatewaySocket, type SocketState } from './gateway-socket.js';
import type { ServerFrame } from './protocol.js';
import { StatusPanel } from './status-panel.js';
import { codeSentence, type Strings } from './strings.js';
import { TokenForm } from './token-form.js';

/** The page's elements the app drives (found by id in main.ts). */
export interface ChatElements {
  log: HTMLOListElement;
  empty: HTMLElement;
  composer: HTMLFormElement;
  message: HTMLTextAreaElement;
  clear: HTMLButtonElement;
  connection: HTMLElement;
  statusList: HTMLUListElement;
  statusJobs: HTMLParagraphElement;
  statusSummary: HTMLElement;
  tokenForm: HTMLFormElement;
  tokenInput: HTMLInputElement;
  tokenMessage: HTMLElement;
}

export interface ChatAppOptions {
  strings: Strings;
  storage: Storage;
  /** `ws://host/ws` of this page's origin. */
  socketUrl: string;
  /** `/status`: its 401 tells a refused socket from a gateway that is away. */
  probeUrl: string;
  elements: ChatElements;
}

/** How often the status panel asks for a fresh `status` frame. */
const STATUS_EVERY_MS = 4000;
/** Streaming writes the conversation to localStorage at most this often (and at once when a job ends). */
const SAVE_AFTER_MS = 250;

/**
 * The chat page: sends what the user writes as `chat` frames (with `clientMsgId`, and the conversation's
 * id once the gateway made one), applies each job's events to its answer, keeps the conversation in
 * localStorage, resubscribes to running jobs after a reconnect or reload, and polls the status.
 */
export class ChatApp {
  private conversation: Conversation;
  private readonly store: ConversationStore;
  private readonly view: ChatView;
  private readonly status: StatusPanel;
  private readonly socket: GatewaySocket;
  /** Chats sent on this socket and not yet accepted or refused (by clientMsgId). */
  private readonly inFlight = new Set<string>();
  /** Jobs resubscribed on this socket that no event has confirmed yet. */
  private readonly resubscribed = new Set<string>();
  private saveTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly options: ChatAppOptions) {
    const { elements: el, strings } = options;
    this.store = new ConversationStore(options.storage);
    this.conversation = this.store.load();
    this.view = new ChatView(el.log, el.empty, strings, { cancel: (answer) => this.cancel(answer), answerDraft: (answer, yes) => this.answerDraft(answer, yes) }, el.message);
    this.status = new StatusPanel(el.statusList, el.statusJobs, el.statusSummary, strings);
    const tokenForm = new TokenForm(el.tokenForm, el.tokenInput, el.tokenMessage, strings, (token) => this.socket.useToken(token));
    this.socket = new GatewaySocket({
      url: options.socketUrl,
      probeUrl: options.probeUrl,
      storage: options.storage,
      onOpen: () => this.onOpen(),
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => this.showConnection(state),
      onTokenNeeded: (refused) => tokenForm.ask(refused),
    });
  }

  start(): void {
    const { elements: el } = this.options;
    for (const message of this.conversation.messages) this.view.show(message);
    el.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitComposer();
    });
    el.message.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter is a new line; never while an input method (Korean) is composing.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.submitComposer();
      }
    });
    el.clear.addEventListener('click', () => this.clear());
    window.addEventListener('pagehide', () => this.saveNow());
    setInterval(() => this.socket.send({ type: 'status' }), STATUS_EVERY_MS);
    this.socket.start();
  }

  private submitComposer(): void {
    const box = this.options.elements.message;
    const text = box.value;
    if (text.trim() === '') return;
    box.value = '';
    this.send(text);
  }

  /** Adds the message and its answer, then sends it (now, or once connected). */
  private send(text: string): void {
    const [user, answer] = newExchange(randomId(), text);
    this.conversation.messages.push(user, answer);
    this.view.show(user);
    this.view.show(answer);
    this.saveNow();
    this.flush();
  }

  /** Sends every chat not yet sent on this socket, oldest first. */
  private flush(): void {
    for (const answer of this.answers()) {
      if (answer.state !== 'sending' || this.inFlight.has(answer.id)) continue;
      const { conversationId } = this.conversation;
      // No conversation id before the first chat is accepted: the next one waits for it, so both land
      // in the same conversation.
      if (conversationId === null && this.inFlight.size > 0) return;
      const user = this.conversation.messages.find((message) => message.role === 'user' && message.id === answer.id);
      if (user === undefined) continue;
      const sent = this.socket.send({ type: 'chat', text: user.text, clientMsgId: answer.id, ...(conversationId === null ? {} : { conversationId }) });
      if (!sent) return;
      this.inFlight.add(answer.id);
    }
  }

  private onOpen(): void {
    this.inFlight.clear();
    this.resubscribed.clear();
    // Jobs that were running when the connection dropped (or the page was reloaded): their events after
    // the last one shown. A chat not yet accepted is sent again by flush: the same clientMsgId gets the
    // same job, never a second one.
    for (const answer of this.answers()) {
      if (answer.state !== 'running' || answer.jobId === null) continue;
      this.resubscribed.add(answer.jobId);
      this.socket.send({ type: 'subscribe', jobId: answer.jobId, afterSeq: answer.lastSeq });
    }
    this.flush();
    this.socket.send({ type: 'status' });
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'accepted': {
        const answer = frame.clientMsgId === undefined ? undefined : this.answer((a) => a.id === frame.clientMsgId);
        if (answer === undefined) return;
        this.inFlight.delete(answer.id);
        this.conversation.conversationId = frame.conversationId;
        answer.jobId = frame.jobId;
        if (answer.state === 'sending') answer.state = 'running';
        this.changed(answer, true);
        this.flush();
        return;
      }
      case 'event': {
        this.resubscribed.delete(frame.jobId);
        const answer = this.answer((a) => a.jobId === frame.jobId);
        if (answer !== undefined && applyEvent(answer, frame, this.options.strings)) this.changed(answer, answer.state !== 'running');
        return;
      }
      case 'status':
        this.status.show(frame);
        return;
      case 'error':
        this.onRefused(frame.code, frame.message, frame.clientMsgId);
        return;
      default:
        return;
    }
  }

  /** A refused frame: a chat (named by its clientMsgId) fails with a sentence; an unknown job is lost. */
  private onRefused(code: string, message: string, clientMsgId: string | undefined): void {
    const { strings } = this.options;
    if (clientMsgId !== undefined) {
      const answer = this.answer((a) => a.id === clientMsgId);
      if (answer === undefined) return;
      this.inFlight.delete(answer.id);
      if (code === 'unknown_conversation') this.conversation.conversationId = null;
      answer.state = 'error';
      answer.error = codeSentence(strings, code, message);
      this.changed(answer, true);
      this.flush();
      return;
    }
    // `unknown_job` names no job: it answers a resubscribe to a job the gateway no longer has (another
    // database, or expired). Any resubscribed job that no event has confirmed is taken as lost; an event
    // that still comes for one brings it back.
    if (code === 'unknown_job') {
      for (const jobId of this.resubscribed) {
        const answer = this.answer((a) => a.jobId === jobId);
        if (answer === undefined || answer.state !== 'running') continue;
        answer.state = 'error';
        answer.error = strings.lost;
        this.changed(answer, true);
      }
      this.resubscribed.clear();
    }
  }

  private cancel(answer: AnswerMessage): void {
    if (answer.jobId !== null) this.socket.send({ type: 'cancel', jobId: answer.jobId });
  }

  /** The user's own yes or no, sent as the next message of this conversation (the gateway's pre-route reads it). */
  private answerDraft(answer: AnswerMessage, yes: boolean): void {
    answer.draftAnswered = true;
    this.changed(answer, true);
    this.send(yes ? this.options.strings.yesWord : this.options.strings.noWord);
  }

  /** Forgets the conversation (cancelling what still runs); the next message starts a new one. */
  private clear(): void {
    for (const answer of this.answers()) if (answer.state === 'running') this.cancel(answer);
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.store.clear();
    this.conversation = { conversationId: null, messages: [] };
    this.inFlight.clear();
    this.resubscribed.clear();
    this.view.clear();
    this.options.elements.message.focus();
  }

  private changed(answer: AnswerMessage, saveNow: boolean): void {
    this.view.show(answer);
    if (saveNow) this.saveNow();
    else this.saveTimer ??= setTimeout(() => this.saveNow(), SAVE_AFTER_MS);
  }

  private saveNow(): void {
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.store.save(this.conversation);
  }

  private showConnection(state: SocketState): void {
    const { strings, elements } = this.options;
    const text = { connecting: strings.connecting, open: strings.connected, reconnecting: strings.reconnecting, needs_token: strings.tokenTitle }[state];
    elements.connection.textContent = text;
    elements.connection.dataset.state = state;
  }

  private answers(): AnswerMessage[] {
    return this.conversation.messages.filter(isAnswer);
  }

  private answer(match: (answer: AnswerMessage) => boolean): AnswerMessage | undefined {
    return this.answers().find(match);
  }
}

/** 128 random bits as hex: a clientMsgId (crypto.randomUUID needs a secure context; a LAN address is not one). */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
