import type { AnswerMessage, Message } from './conversation-store.js';
import type { Strings } from './strings.js';
import { attachJobTrace } from './job-trace.js';

export interface ChatViewActions {
  cancel(answer: AnswerMessage): void;
  answerDraft(answer: AnswerMessage, yes: boolean): void;
}

/** The parts of one answer bubble, updated in place so a focused button keeps its focus. */
interface AnswerNodes {
  item: HTMLLIElement;
  notice: HTMLParagraphElement;
  text: HTMLDivElement;
  error: HTMLParagraphElement;
  sources: HTMLDivElement;
  draft: HTMLDivElement;
  cancel: HTMLButtonElement;
}

/**
 * The conversation as a list (`role="log"`, so screen readers hear new answers): user messages as they
 * were sent, each answer with its notice, streamed text, sources, draft buttons and a Cancel button
 * while its job runs. Nodes are kept by message id and updated in place.
 */
export class ChatView {
  private readonly answers = new Map<string, AnswerNodes>();

  constructor(
    private readonly list: HTMLOListElement,
    private readonly empty: HTMLElement,
    private readonly strings: Strings,
    private readonly actions: ChatViewActions,
    /** Where focus goes when the focused button disappears (the message box). */
    private readonly home: HTMLElement,
  ) {}

  /** Shows a message: adds it at the end the first time, updates it afterwards. */
  show(message: Message): void {
    this.empty.hidden = true;
    if (message.role === 'user') {
      if (this.list.querySelector(`li[data-role="user"][data-id="${CSS.escape(message.id)}"]`) !== null) return;
      const item = element('li', 'message user');
      item.dataset.role = 'user';
      item.dataset.id = message.id;
      item.append(label(this.strings.you), element('div', 'text', message.text));
      this.list.append(item);
      this.scroll();
      return;
    }
    const nodes = this.answers.get(message.id) ?? this.addAnswer(message);
    this.update(message, nodes);
    this.scroll();
  }

  clear(): void {
    this.list.replaceChildren();
    this.answers.clear();
    this.empty.hidden = false;
  }

  private addAnswer(answer: AnswerMessage): AnswerNodes {
    const item = element('li', 'message assistant');
    item.dataset.role = 'answer';
    item.dataset.id = answer.id;
    const nodes: AnswerNodes = {
      item,
      notice: element('p', 'notice'),
      text: element('div', 'text'),
      error: element('p', 'error'),
      sources: element('div', 'sources'),
      draft: element('div', 'draft'),
      cancel: element('button', 'cancel', this.strings.cancel),
    };
    nodes.cancel.type = 'button';
    nodes.cancel.addEventListener('click', () => this.actions.cancel(answer));
    item.append(label(this.strings.assistant), nodes.notice, nodes.text, nodes.error, nodes.sources, nodes.draft, nodes.cancel);
    this.list.append(item);
    this.answers.set(answer.id, nodes);
    return nodes;
  }

  private update(answer: AnswerMessage, nodes: AnswerNodes): void {
    const { strings } = this;
    nodes.item.dataset.state = answer.state;
    const notice = answer.state === 'cancelled' ? strings.cancelled : answer.state === 'sending' ? strings.sending : answer.notice;
    setText(nodes.notice, notice);
    setText(nodes.text, answer.text === '' ? null : answer.text);
    setText(nodes.error, answer.error);
    if (answer.sources.length > 0 && nodes.sources.childElementCount === 0) {
      const list = element('ul');
      for (const source of answer.sources) list.append(element('li', undefined, source.title));
      nodes.sources.append(element('h3', undefined, strings.sources), list);
    }
    this.updateDraft(answer, nodes);
    if (answer.jobId !== null && (answer.state === 'done' || answer.state === 'error' || answer.state === 'cancelled')) attachJobTrace(nodes.item, answer.jobId);
    // The job runs and has an id to cancel by.
    const cancellable = answer.state === 'running' && answer.jobId !== null;
    if (!cancellable) this.keepFocus(nodes.cancel);
    nodes.cancel.hidden = !cancellable;
  }

  private updateDraft(answer: AnswerMessage, nodes: AnswerNodes): void {
    const { draft: box } = nodes;
    if (answer.draft === null) return;
    if (box.childElementCount === 0) {
      const fields = element('dl');
      for (const [key, value] of Object.entries(answer.draft)) {
        if (!Object.hasOwn(this.strings.draftFields, key) || (typeof value !== 'string' && typeof value !== 'number')) continue;
        fields.append(element('dt', undefined, this.strings.draftFields[key]), element('dd', undefined, String(value)));
      }
      const yes = element('button', 'yes', this.strings.yes);
      const no = element('button', 'no', this.strings.no);
      yes.type = 'button';
      no.type = 'button';
      yes.addEventListener('click', () => this.actions.answerDraft(answer, true));
      no.addEventListener('click', () => this.actions.answerDraft(answer, false));
      // The answer above already asks the question; the buttons are its two answers.
      const buttons = element('div', 'draft-buttons');
      buttons.setAttribute('role', 'group');
      buttons.setAttribute('aria-label', this.strings.confirmQuestion);
      buttons.append(yes, no);
      box.append(fields, buttons);
    }
    const buttons = box.querySelector<HTMLElement>('.draft-buttons');
    if (buttons !== null && answer.draftAnswered) {
      for (const button of buttons.querySelectorAll('button')) this.keepFocus(button);
      buttons.remove();
    }
  }

  /** A button about to disappear hands its focus to the message box, so a keyboard user is not lost. */
  private keepFocus(button: HTMLElement): void {
    if (document.activeElement === button) this.home.focus();
  }

  private scroll(): void {
    this.list.lastElementChild?.scrollIntoView({ block: 'end' });
  }
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Who speaks, for screen readers and (small) on screen. */
function label(text: string): HTMLElement {
  return element('span', 'who', text);
}

function setText(node: HTMLElement, text: string | null): void {
  node.hidden = text === null;
  if (node.textContent !== (text ?? '')) node.textContent = text ?? '';
}
