import { idleRss } from './job-memory.js';

/** Prints the idle RSS (MiB) of a runtime on `argv[2]` (the fake) with database `argv[3]` (or PGlite). */
const rss = await idleRss(process.argv[2] ?? '', process.argv[3] || null);
process.stdout.write(`${rss.toFixed(0)}\n`);
process.exit(0);
