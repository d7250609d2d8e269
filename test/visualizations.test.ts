import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderVisualizations } from '../scripts/visualizations.js';

describe('visualizations/', () => {
  for (const [file, expected] of renderVisualizations()) {
    it(`${file} is current (run npm run visualize after changing a machine)`, () => {
      let actual = '';
      try {
        actual = readFileSync(new URL(`../visualizations/${file}`, import.meta.url), 'utf8');
      } catch {
        actual = '(missing)';
      }
      expect(actual).toBe(expected);
    });
  }
});
