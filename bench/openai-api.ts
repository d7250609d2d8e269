import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime/create-runtime.js';
import { startGateway } from '../src/transport/start-gateway.js';
import { stats } from './harness.js';
import { benchConfig } from './jobs.js';

/**
 * `POST /v1/chat/completions` with a mode, sequential, against the instant fake (in another process):
 * each round calls the fake directly and then the same request through the gateway (mode `daily`), both
 * streamed and read to the end with the same client (Node's fetch), side by side in one run. The
 * overhead is through-the-gateway minus direct, as medians and as p99s (milliseconds). The floor, measured
 * the same way in the same rounds: a bare relay in this process (node:http in, fetch to the fake, the
 * body piped back; no auth, checks, jobs or journal).
 */
export async function benchOpenAiApi(baseUrl: string, rounds = 2_000, warmup = 200) {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-openai-'));
  const log = createLogger({ level: 'silent' });
  const runtime = createRuntime(benchConfig(baseUrl, dataDir), { log });
  await runtime.start();
  const gateway = await startGateway({ runtime, log, host: '127.0.0.1', port: 0 });
  const relay = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      void fetch(`${baseUrl}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(parts) }).then(async (upstream) => {
        res.writeHead(upstream.status, { 'content-type': 'text/event-stream' });
        for await (const chunk of upstream.body!) res.write(chunk);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}/v1/chat/completions`;
  const messages = [{ role: 'user', content: 'hello' }];
  const call = async (url: string, model: string): Promise<number> => {
    const t = performance.now();
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages, stream: true }),
    });
    const text = await response.text();
    if (response.status !== 200 || !text.includes('[DONE]')) throw new Error(`bench call to ${url} failed: ${response.status}`);
    return performance.now() - t;
  };
  const direct: number[] = [];
  const via: number[] = [];
  const floor: number[] = [];
  try {
    for (let i = 0; i < warmup + rounds; i++) {
      const d = await call(`${baseUrl}/chat/completions`, 'bench');
      const v = await call(`${gateway.url}/v1/chat/completions`, 'daily');
      const f = await call(relayUrl, 'bench');
      if (i >= warmup) direct.push(d), via.push(v), floor.push(f);
    }
  } finally {
    relay.close();
    await runtime.stop(0);
    await gateway.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const d = stats(direct);
  const v = stats(via);
  const f = stats(floor);
  return {
    rounds,
    direct: d,
    via: v,
    overheadMedianMs: v.median - d.median,
    overheadP99Ms: v.p99 - d.p99,
    floorOverheadMedianMs: f.median - d.median,
    floorOverheadP99Ms: f.p99 - d.p99,
  };
}
