/**
 * The flight recorder under a finished answer: a closed "How it ran" disclosure that, when opened, asks
 * `GET /jobs/:id/trace` and shows each state the job went through, how long it stayed and the event that
 * left it (state names and event types only; the gateway never records a message).
 */

/** Where `gateway-socket.ts` keeps the token the user gave (the same key). */
const TOKEN_KEY = 'switchboard.token';

interface TimelineEntry {
  state: string;
  event: string;
  ms: number | null;
  leftOn: string | null;
}

const LABELS = {
  en: { summary: 'How it ran', state: 'State', time: 'Time', leftOn: 'Left on', final: 'final', failed: 'The trace could not be loaded.', empty: 'No steps were recorded.' },
  ko: { summary: '처리 과정', state: '상태', time: '시간', leftOn: '다음 이벤트', final: '끝', failed: '처리 과정을 불러오지 못했습니다.', empty: '기록된 단계가 없습니다.' },
} as const;

/**
 * Adds the disclosure to a finished answer's bubble `item`, once; it loads the trace the first time it is
 * opened (a job's trace is complete once it has ended, so once is enough).
 */
export function attachJobTrace(item: HTMLElement, jobId: string, storage: Pick<Storage, 'getItem'> = window.localStorage): void {
  if (item.querySelector(':scope > details.trace') !== null) return;
  const labels = document.documentElement.lang.startsWith('ko') ? LABELS.ko : LABELS.en;
  const details = document.createElement('details');
  details.className = 'trace';
  const summary = document.createElement('summary');
  summary.textContent = labels.summary;
  details.append(summary);
  let loaded = false;
  details.addEventListener('toggle', () => {
    if (!details.open || loaded) return;
    loaded = true;
    const token = storage.getItem(TOKEN_KEY);
    fetch(`/jobs/${encodeURIComponent(jobId)}/trace`, { cache: 'no-store', headers: token === null ? {} : { authorization: `Bearer ${token}` } })
      .then(async (response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const body = (await response.json()) as { transitions?: TimelineEntry[] };
        details.append(timeline(body.transitions ?? [], labels));
      })
      .catch(() => {
        loaded = false;
        const message = document.createElement('p');
        message.className = 'error';
        message.textContent = labels.failed;
        details.append(message);
      });
  });
  item.append(details);
}

function timeline(entries: readonly TimelineEntry[], labels: (typeof LABELS)[keyof typeof LABELS]): HTMLElement {
  if (entries.length === 0) {
    const empty = document.createElement('p');
    empty.textContent = labels.empty;
    return empty;
  }
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const title of [labels.state, labels.time, labels.leftOn]) {
    const cell = document.createElement('th');
    cell.scope = 'col';
    cell.textContent = title;
    head.append(cell);
  }
  const body = table.createTBody();
  for (const entry of entries) {
    const row = body.insertRow();
    row.insertCell().textContent = entry.state;
    row.insertCell().textContent = entry.ms === null ? labels.final : `${entry.ms} ms`;
    row.insertCell().textContent = entry.leftOn ?? '';
  }
  return table;
}
