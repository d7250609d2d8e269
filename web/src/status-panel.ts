import type { StatusFrame } from './protocol.js';
import type { Strings } from './strings.js';

/** Each backend's state and load, and the gateway's job counts, from the latest `status` frame. */
export class StatusPanel {
  constructor(
    private readonly list: HTMLUListElement,
    private readonly jobs: HTMLParagraphElement,
    private readonly summary: HTMLElement,
    private readonly strings: Strings,
  ) {
    this.jobs.textContent = strings.statusWaiting;
  }

  show(status: StatusFrame): void {
    const { strings } = this;
    const rows = Object.entries(status.backends).map(([name, backend]) => {
      const row = document.createElement('li');
      row.dataset.backend = name;
      row.dataset.state = backend.state;
      const state = strings.states[backend.state] ?? backend.state;
      const load = strings.loads[backend.load] ?? backend.load;
      row.append(
        span('name', name),
        span(`state state-${backend.state}`, backend.state === 'up' ? `${state} · ${load}` : state),
        span('queue', backend.queue === undefined ? '' : strings.queue(backend.queue.waiting, backend.queue.running)),
      );
      if (backend.state === 'down' && backend.reason !== undefined) {
        row.append(span('reason', strings.reasons[backend.reason] ?? backend.reason));
      }
      return row;
    });
    this.list.replaceChildren(...rows);
    this.jobs.textContent = strings.jobs(status.jobs.active, status.jobs.pending);
    const up = Object.values(status.backends).filter((backend) => backend.state === 'up').length;
    this.summary.textContent = `${strings.statusTitle} ${up}/${rows.length}`;
  }
}

function span(className: string, text: string): HTMLSpanElement {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  return node;
}
