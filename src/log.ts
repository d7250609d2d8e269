import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** How log lines are written: JSON for machines, or coloured lines for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/**
 * `LOG_FORMAT` when set (`json` or `pretty`), else pretty on a terminal and JSON otherwise (a pipe, a
 * file, a service manager's journal).
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const wanted = env.LOG_FORMAT?.trim().toLowerCase();
  if (wanted === 'json' || wanted === 'pretty') return wanted;
  return isTTY ? 'pretty' : 'json';
}

/**
 * The root logger: structured JSON on stdout, or pino-pretty's coloured lines on a terminal, both written
 * synchronously in this thread, so a line logged just before exit is neither lost nor
 * out of order. Children are bound to a backend or job id. Message bodies are never passed to it: log
 * lines carry ids, sizes, timings and reasons only.
 */
export function createLogger(options: { level?: string; format?: LogFormat } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  const format = options.format ?? logFormat();
  // Synchronous, like the pretty stream: pino's default stdout stream writes from the thread pool, and
  // at `process.exit` its exit hook writes what is buffered ahead of a write still in flight, so the
  // last lines of a shutdown came out of order or not at all.
  if (format === 'json') return pino({ level, base: { service: 'switchboard' } }, pino.destination({ dest: 1, sync: true }));
  const stream = pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' });
  return pino({ level, base: { service: 'switchboard' } }, stream);
}

export type { Logger };
