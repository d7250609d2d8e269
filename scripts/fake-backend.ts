/**
 * `npm run fake-backend [-- --port N] [--model NAME]`: the test suite's fake OpenAI-compatible model
 * server, for trying Switchboard without a real one. It listens on 127.0.0.1:11434 by default — Ollama's
 * port, where the built-in config looks — and lists the models of the built-in config and of
 * switchboard.example.json and of the README's one-backend example, so `npm start` beside it needs no
 * config (or either example as it is). It answers the classifier with "route" and streams a short scripted answer
 * that repeats the message's length (never its text: nothing here is a model).
 */
import { startFakeBackend, type FakeReply, type FakeRequestBody } from '../test/fakes/fake-openai-backend.js';
import { classifiedText } from '../test/helpers/scripted-models.js';
import { parseScriptArgs } from './database-target.js';

const HELP = `Usage: npm run fake-backend -- [--port N] [--model NAME]

Starts a fake OpenAI-compatible model server (the one the tests use) with a scripted answer, so you can
try the gateway without a model server: run this, then \`npm start\` in another terminal.

Options:
      --port N       port on 127.0.0.1 (default 11434, where the built-in config looks; 0 = any free port)
      --model NAME   a model it lists on /v1/models; repeat for more (default: llama3.2, the built-in
                     config's; qwen3:4b and qwen3:14b, switchboard.example.json's; and qwen3:8b,
                     the README's one-backend example's)
  -h, --help         print this help and exit`;

const { values } = parseScriptArgs('fake-backend', HELP, { port: { type: 'string' }, model: { type: 'string', multiple: true } });
const port = values.port === undefined ? 11434 : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  process.stderr.write(`fake-backend: --port must be a port number (0–65535), got ${values.port}\n`);
  process.exit(2);
}
const models = values.model ?? ['llama3.2', 'qwen3:4b', 'qwen3:14b', 'qwen3:8b'];

/** Classifier requests are sent to the reasoner; everything else gets the scripted answer, word by word. */
function reply(body: FakeRequestBody): FakeReply {
  if (classifiedText(body) !== null) return { content: JSON.stringify({ action: 'route' }) };
  const last = String(body.messages.at(-1)?.content ?? '');
  const words = `This is Switchboard's fake model server. Your message had ${[...last].length} characters. Point a backend's baseUrl at a real model server (Ollama, llama.cpp, MLX, vLLM) for real answers.`.split(/(?<= )/);
  return { content: words, chunkDelayMs: 40 };
}

let fake;
try {
  fake = await startFakeBackend({ port, models, defaultReply: reply });
} catch (error) {
  const code = (error as { code?: unknown }).code;
  process.stderr.write(
    code === 'EADDRINUSE'
      ? `fake-backend: port ${port} is in use (a model server already running?); choose another with --port\n`
      : `fake-backend: cannot listen on port ${port}: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
}
process.stdout.write(`fake model server on ${fake.baseUrl} (models ${models.join(', ')}); Ctrl-C stops it\n`);
// The fake keeps every request for the tests' assertions: a long try-out forgets them every minute.
setInterval(() => fake.resetStats(), 60_000).unref();
const stop = (): void => void fake.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
