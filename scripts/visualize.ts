import { mkdirSync, writeFileSync } from 'node:fs';
import { renderVisualizations } from './visualizations.js';

/** `npm run visualize`: regenerates `visualizations/` from the machines. */
mkdirSync('visualizations', { recursive: true });
for (const [file, text] of await renderVisualizations()) {
  writeFileSync(`visualizations/${file}`, text);
  process.stdout.write(`wrote visualizations/${file}\n`);
}
