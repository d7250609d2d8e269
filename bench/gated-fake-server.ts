import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { startFakeBackend } from '../test/fakes/fake-openai-backend.js';

/**
 * The bench fake (like `fake-server.ts`) in its own process, with a gate and a record, driven over IPC by
 * `gated-fake.ts`. While the gate is closed every chat completion is held before its answer; opening it
 * answers them all. It records, in its own clock, the user text of each chat in the order served, the
 * most chats open at once, and the dispatch gap: from one chat's response handed to the socket
 * (`http.server.response.finish`) to the next chat's arrival (`http.server.request.start`) when none was
 * open between — the time the client took to send the next request once it had the answer.
 */
const classified = JSON.stringify({ action: 'direct', response: 'ok' });
let opened = Promise.resolve();
let open = () => {};
const served: string[] = [];
const gaps: number[] = [];
let openChats = 0;
let lastEnd: number | undefined;

const isChat = (request: IncomingMessage) => request.method === 'POST' && request.url?.endsWith('/chat/completions') === true;
subscribe('http.server.request.start', (message) => {
  const now = performance.now();
  if (!isChat((message as { request: IncomingMessage }).request)) return;
  if (openChats === 0 && lastEnd !== undefined) gaps.push(now - lastEnd);
  openChats++;
});
subscribe('http.server.response.finish', (message) => {
  if (!isChat((message as { request: IncomingMessage }).request)) return;
  openChats--;
  lastEnd = performance.now();
});

const fake = await startFakeBackend({
  models: ['bench'],
  defaultReply: async (body) => {
    const last = String(body.messages.at(-1)?.content ?? '');
    served.push(last);
    await opened;
    // A classifier request (its user message starts with `[now]`) gets a ready direct answer.
    return { content: last.startsWith('[now]') ? classified : 'x' };
  },
});

process.on('message', (command: 'open' | 'close' | 'report') => {
  if (command === 'open') open();
  if (command === 'close') opened = new Promise((resolve) => (open = resolve));
  if (command === 'report') process.send!({ served, gaps, maxConcurrent: fake.maxConcurrent, concurrent: fake.concurrent });
});
process.send!({ baseUrl: fake.baseUrl });
process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
