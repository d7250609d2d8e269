import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { npmStartNodeArgs } from './npm-start-command.js';

/** A gateway started as a user starts it, from a folder of their own. */
export interface FolderGateway {
  url: string;
  wsUrl: string;
  /** The `msg` of every log line so far. */
  messages: string[];
  /** Every log line so far, parsed. */
  entries: Array<Record<string, unknown> & { msg: string; level: number }>;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Runs what `npm start -- ARGS` runs (the bundle in `dist/`) with `dir` as the working directory (so `./switchboard.config.json` and `./data`
 * are the folder's), on any free port (`SWITCHBOARD_PORT=0`: 8787 may be taken here), and resolves once it
 * listens and has logged its start.
 */
export async function startInFolder(dir: string, args: readonly string[] = []): Promise<FolderGateway> {
  const child = spawn(process.execPath, [...npmStartNodeArgs(), ...args], {
    cwd: dir,
    env: { ...process.env, VITEST: '', LOG_LEVEL: 'info', SWITCHBOARD_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const messages: string[] = [];
  const entries: FolderGateway['entries'] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as FolderGateway['entries'][number] & { url?: string };
      entries.push(entry);
      messages.push(entry.msg);
      if (entry.msg === 'switchboard listening' && entry.url) resolve(entry.url);
    });
    child.once('exit', (code) => reject(new Error(`the gateway exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    messages,
    entries,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'close');
    },
  };
}
