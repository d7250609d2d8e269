import { pino, type Logger } from 'pino';

/**
 * The root logger. Structured JSON on stdout; children are bound to a backend or job id. Message bodies
 * are never passed to it: log lines carry ids, sizes, timings and reasons only.
 */
export function createLogger(options: { level?: string } = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  return pino({ level, base: { service: 'switchboard' } });
}

export type { Logger };
