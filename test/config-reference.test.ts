import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configKeyRows, renderKeyTable, withKeyTable } from '../src/config/config-reference.js';
import { configObjectSchema } from '../src/config/config-schema.js';
import { loadConfig } from '../src/config/load-config.js';
import { allowedKeysAt } from '../src/config/schema-keys.js';
import { startFakeBackend } from './fakes/fake-openai-backend.js';
import { TestClient } from './helpers/gateway.js';
import { startInFolder } from './helpers/start-in-folder.js';

const read = (file: string): string => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
const EXAMPLE = new URL('../switchboard.example.json', import.meta.url).pathname;

describe('the config reference', () => {
  it('is fresh in the README and docs/configuration.md (run `npm run config-reference` when this fails)', () => {
    const table = renderKeyTable(configKeyRows());
    for (const file of ['README.md', 'docs/configuration.md']) expect(withKeyTable(read(file), table), file).toBe(read(file));
  });

  it('has a row with a type and a meaning for every key of every section', () => {
    const rows = configKeyRows();
    for (const row of rows) {
      expect(row.meaning, row.key).not.toBe('');
      expect(row.type, row.key).not.toBe('');
    }
    const keys = new Set(rows.map((row) => row.key));
    for (const section of allowedKeysAt(configObjectSchema, [])) {
      const inside = allowedKeysAt(configObjectSchema, [section]);
      const expected = inside.length > 0 && section !== 'backends' ? inside.map((key) => `${section}.${key}`) : [section];
      for (const key of expected) expect([...keys].some((k) => k === key || k.startsWith(`${key}.`)), key).toBe(true);
    }
    for (const key of allowedKeysAt(configObjectSchema, ['backends', 'any'])) expect(keys.has(`backends.NAME.${key}`), key).toBe(true);
  });
});

describe('switchboard.example.json', () => {
  it('has every section and is valid as it is', () => {
    const example = JSON.parse(read('switchboard.example.json')) as Record<string, unknown>;
    expect(Object.keys(example)).toEqual(allowedKeysAt(configObjectSchema, []));
    const config = loadConfig({ path: EXAMPLE, env: {} });
    expect(config.roles).toEqual({ classifier: 'fast', reasoner: 'smart' });
  });

  it('starts as it is against the fake model server on its port, and answers', { timeout: 90_000 }, async () => {
    // What `npm run fake-backend` serves: Ollama's port, the example's models.
    const fake = await startFakeBackend({ port: 11434, models: ['llama3.2', 'qwen3:4b', 'qwen3:14b'] });
    fake.setDefault((body) => (body.stream ? { content: ['example ', 'answer'] } : { content: JSON.stringify({ action: 'route' }) }));
    const gateway = await startInFolder(mkdtempSync(join(tmpdir(), 'sb-example-')), ['-c', EXAMPLE]);
    let client: TestClient | undefined;
    try {
      client = await TestClient.connect(gateway.wsUrl);
      const { jobId } = await client.chat('hello');
      expect((await client.finished(jobId, 30_000)).at(-1)?.event).toBe('done');
      expect(client.answer(jobId)).toBe('example answer');
      // The classifier asked the fast model and the reasoner the smart one (health pings, one token each, aside).
      expect(fake.chatRequests.filter((r) => r.body?.max_tokens !== 1).map((r) => r.body?.model)).toEqual(['qwen3:4b', 'qwen3:14b']);
    } finally {
      client?.close();
      await gateway.stop();
      await fake.close();
    }
  });
});
