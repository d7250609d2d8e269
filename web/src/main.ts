import { ChatApp } from './chat-app.js';
import { pickStrings, type Strings } from './strings.js';

/**
 * The web chat page (served at `GET /`): labels in the browser's language (Korean for `ko…`, else
 * English), then the app on this origin's WebSocket.
 */
const strings = pickStrings(navigator.language);

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node as T;
}

/** Fills every `data-text` element with its sentence (the HTML holds the English as a fallback). */
function label(page: Strings): void {
  document.documentElement.lang = page.lang;
  document.title = page.title;
  for (const node of document.querySelectorAll<HTMLElement>('[data-text]')) {
    const value = page[node.dataset.text as keyof Strings];
    if (typeof value === 'string') node.textContent = value;
  }
  byId<HTMLTextAreaElement>('message').placeholder = page.placeholder;
}

label(strings);
// A phone's screen is for the conversation: the status folds into its one-line summary there.
if (window.matchMedia('(max-width: 640px)').matches) byId<HTMLDetailsElement>('status').open = false;
const origin = new URL(window.location.href);
new ChatApp({
  strings,
  storage: window.localStorage,
  socketUrl: `${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}/ws`,
  probeUrl: '/status',
  elements: {
    log: byId('log'),
    empty: byId('empty'),
    composer: byId('composer'),
    message: byId('message'),
    clear: byId('clear'),
    connection: byId('connection'),
    statusList: byId('status-list'),
    statusJobs: byId('status-jobs'),
    statusSummary: byId('status-summary'),
    tokenForm: byId('token-form'),
    tokenInput: byId('token'),
    tokenMessage: byId('token-message'),
  },
}).start();
