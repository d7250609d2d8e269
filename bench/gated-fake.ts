import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** What `gated-fake-server.ts` recorded so far. */
export interface GatedFakeReport {
  /** The last message's text of each chat completion, in the order they were served. */
  served: string[];
  /** ms from a chat's response end to the next chat's arrival, when none was open between (the fake's clock). */
  gaps: number[];
  /** The most chat completions open at once, and how many are open now. */
  maxConcurrent: number;
  concurrent: number;
}

/** The fake with a gate (`gated-fake-server.ts`) in a child process. */
export interface GatedFake {
  baseUrl: string;
  /** Close: hold every answer from now on. Open: answer the held ones and every later one at once. */
  close(): void;
  open(): void;
  report(): Promise<GatedFakeReport>;
  stop(): Promise<void>;
}

/** Starts `gated-fake-server.ts` with its gate open. */
export async function startGatedFake(): Promise<GatedFake> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./gated-fake-server.ts', import.meta.url).pathname], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit');
  const [{ baseUrl }] = (await Promise.race([once(child, 'message'), exited.then(() => Promise.reject(new Error('the gated fake exited')))])) as [{ baseUrl: string }];
  return {
    baseUrl,
    close: () => child.send('close'),
    open: () => child.send('open'),
    report: async () => {
      child.send('report');
      const [report] = (await once(child, 'message')) as [GatedFakeReport];
      return report;
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
