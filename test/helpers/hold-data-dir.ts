/**
 * `node --import tsx test/helpers/hold-data-dir.ts DIR HOLD_MS [AT]`: takes DIR's lock as a database
 * would — at the epoch millisecond AT when given, so that several processes race for it — prints `locked`
 * or the refusal's sentence, holds the lock HOLD_MS milliseconds and releases it.
 */
import { DataDirInUseError, lockDataDir } from '../../src/actors/store/data-dir-lock.js';

const [dir, holdMs = '0', at] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: hold-data-dir.ts DIR HOLD_MS [AT]');
if (at !== undefined) await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(at) - Date.now())));
try {
  const lock = await lockDataDir(dir);
  process.stdout.write('locked\n');
  await new Promise((resolve) => setTimeout(resolve, Number(holdMs)));
  lock.release();
} catch (error) {
  if (!(error instanceof DataDirInUseError)) throw error;
  process.stdout.write(`${error.message}\n`);
}
