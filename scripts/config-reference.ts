/**
 * `npm run config-reference`: writes the table of every config key (type, default, meaning), generated
 * from the zod schema, into the README and docs/configuration.md between their markers. A test fails
 * when a committed table differs from what this writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configKeyRows, renderKeyTable, withKeyTable } from '../src/config/config-reference.js';

export const KEY_TABLE_FILES = ['README.md', 'docs/configuration.md'] as const;

const root = new URL('..', import.meta.url);
const table = renderKeyTable(configKeyRows());
for (const file of KEY_TABLE_FILES) {
  const path = new URL(file, root);
  const before = readFileSync(path, 'utf8');
  const after = withKeyTable(before, table);
  if (after !== before) writeFileSync(path, after);
  console.log(`${file}: ${after === before ? 'up to date' : 'table written'}`);
}
