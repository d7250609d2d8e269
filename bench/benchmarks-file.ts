import { writeFileSync } from 'node:fs';

/**
 * What `npm run bench` prints, kept so the run can be written to `BENCHMARKS.md`: every figure next to
 * its goal and its baseline, as printed, with the machine, the date and how to run it again.
 */
export class BenchmarksFile {
  private readonly lines: string[] = [];

  /** Prints a line of the report and keeps it. */
  say(line: string): void {
    console.log(line);
    this.lines.push(line);
  }

  write(path: string, machine: string, date: Date): void {
    const body = [
      '# Benchmarks',
      '',
      `Written by \`npm run bench\` on ${date.toISOString().slice(0, 16).replace('T', ' ')} UTC, on ${machine}.`,
      '',
      'Every figure is measured side by side with its baseline in the same run (medians and p99s over',
      'repeated rounds), and printed next to its goal. How to read them, and why a goal is missed where one',
      'is: the README, section Performance.',
      '',
      'Run it again: `npm ci && npm run bench` (the PostgreSQL rows need `BENCH_DATABASE_URL=postgres://…`',
      'or `TEST_DATABASE_URL`; without it they say "not measured"). It takes a few minutes and rewrites this file.',
      '',
      '```text',
      ...this.lines.map((line) => line.replace(/\s+$/, '')),
      '```',
      '',
    ].join('\n');
    writeFileSync(path, body);
  }
}
