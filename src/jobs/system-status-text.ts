/**
 * The answer to "how are the servers doing?" (DESIGN §6, seed 001): the `/status` body as a few
 * readable lines in the user's language, one block per backend and a last line with the job counts.
 */
import type { LoadLevel, LoadSource } from '../machines/load-estimate.js';
import { fillTemplate, type Messages } from '../prompts/messages.js';

/**
 * What is shown: the shape of `StatusBody` (`src/runtime/runtime.ts`, DESIGN §5), restated here so
 * the job layer does not import from the runtime above it. A `StatusBody` is assignable to it.
 */
export interface SystemStatusView {
  backends: Readonly<
    Record<
      string,
      {
        state: 'up' | 'down' | 'unknown';
        load: LoadLevel;
        source: LoadSource;
        queue: { waiting: number; running: number };
        healthMs: number;
      }
    >
  >;
  jobs: { active: number; pending: number };
}

/**
 * Formats `status` with the labels of `messages` and the number format of `locale`. A backend that is
 * not up shows no load, source or latency: those describe a server that is answering.
 */
export function formatSystemStatus(status: SystemStatusView, messages: Messages, locale: string): string {
  const labels = messages.status;
  const number = numberFormat(locale);
  const lines = [labels.title];
  const backends = Object.entries(status.backends);
  if (backends.length === 0) lines.push(labels.noBackends);
  for (const [name, backend] of backends) {
    const up = backend.state === 'up';
    lines.push(
      up
        ? `${name}: ${labels.state.up} · ${labels.load[backend.load]} (${labels.source[backend.source]})`
        : `${name}: ${labels.state[backend.state]}`,
    );
    const details = [
      fillTemplate(labels.queue, {
        waiting: number.format(backend.queue.waiting),
        running: number.format(backend.queue.running),
      }),
    ];
    // 0 means "never measured" (no successful probe yet), not an infinitely fast server.
    if (up && backend.healthMs > 0) {
      details.push(fillTemplate(labels.health, { ms: number.format(Math.round(backend.healthMs)) }));
    }
    lines.push(`  ${details.join(' · ')}`);
  }
  lines.push(
    fillTemplate(labels.jobs, {
      active: number.format(status.jobs.active),
      pending: number.format(status.jobs.pending),
    }),
  );
  return lines.join('\n');
}

function numberFormat(locale: string): Intl.NumberFormat {
  try {
    return new Intl.NumberFormat(locale);
  } catch {
    // A malformed locale tag must not cost the user the status answer.
    return new Intl.NumberFormat('en');
  }
}
