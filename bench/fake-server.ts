import { startFakeBackend } from '../test/fakes/fake-openai-backend.js';

/**
 * The fake backend in its own process, so that its work does not count against the code under test.
 * Prints its base URL, then serves until killed. Replies: `{"content":"x"}` for completions; streams of
 * `BENCH_CHUNKS` chunks every `BENCH_CHUNK_DELAY_MS` when asked with the user text `stream`.
 */
const chunks = Number(process.env.BENCH_CHUNKS ?? 200);
const delay = Number(process.env.BENCH_CHUNK_DELAY_MS ?? 0);
const piece = Array.from({ length: chunks }, (_, i) => `tok${i % 10} `);
const fake = await startFakeBackend({
  defaultReply: (body) =>
    body.messages.at(-1)?.content === 'stream' ? { content: piece, chunkDelayMs: delay } : { content: 'x' },
});
process.stdout.write(`${fake.baseUrl}\n`);
process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
