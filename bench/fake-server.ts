import { startFakeBackend } from '../test/fakes/fake-openai-backend.js';

/**
 * The fake backend in its own process, so that its work does not count against the code under test.
 * Prints its base URL, then serves until killed. Replies: `{"content":"x"}` for completions; streams of
 * `BENCH_CHUNKS` chunks every `BENCH_CHUNK_DELAY_MS` when asked with the user text `stream`.
 */
const chunks = Number(process.env.BENCH_CHUNKS ?? 200);
const delay = Number(process.env.BENCH_CHUNK_DELAY_MS ?? 0);
const piece = Array.from({ length: chunks }, (_, i) => `tok${i % 10} `);
// A classifier request (its user message starts with `[now]`) gets a ready direct answer.
const classified = JSON.stringify({ action: 'direct', response: 'ok' });
const fake = await startFakeBackend({
  models: ['bench'],
  defaultReply: (body) => {
    const last = String(body.messages.at(-1)?.content ?? '');
    if (last === 'stream') return { content: piece, chunkDelayMs: delay };
    if (last.startsWith('[now]') && process.env.BENCH_HOLD === '1') return { content: classified, headersDelayMs: 600_000 };
    return { content: last.startsWith('[now]') ? classified : 'x' };
  },
});
process.stdout.write(`${fake.baseUrl}\n`);
process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
