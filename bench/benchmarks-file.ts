import { writeFileSync } from 'node:fs';

/** What a benchmarks page says around its figures: its title, the command that wrote it, how to read them. */
export interface BenchmarksPage {
  title: string;
  command: string;
  /** Paragraphs between the date line and the figures. */
  about: string[];
}

/** `BENCHMARKS.md`, written by the full `npm run bench`. */
export const BENCHMARKS_PAGE: BenchmarksPage = {
  title: 'Benchmarks',
  command: 'npm run bench',
  about: [
    [
      'Every figure is measured side by side with its baseline in the same run (medians and p99s over',
      'repeated rounds), and printed next to its goal. How to read them, and why a goal is missed where one',
      'is: the README, section Performance.',
    ].join('\n'),
    [
      'Run it again: `npm ci && npm run bench` (the PostgreSQL rows need `BENCH_DATABASE_URL=postgres://…`',
      'or `TEST_DATABASE_URL`; without it they say "not measured"). It takes a few minutes and rewrites this file.',
    ].join('\n'),
  ],
};

/**
 * What a bench run prints, kept so the run can be written to a page (`BENCHMARKS.md`, `BENCHMARKS-SOAK.md`):
 * every figure as printed, with the machine, the date and how to run it again.
 */
export class BenchmarksFile {
  private readonly lines: string[] = [];

  /** Prints a line of the report and keeps it. */
  say(line: string): void {
    console.log(line);
    this.lines.push(line);
  }

  write(path: string, machine: string, date: Date, page: BenchmarksPage = BENCHMARKS_PAGE): void {
    const body = [
      `# ${page.title}`,
      '',
      `Written by \`${page.command}\` on ${date.toISOString().slice(0, 16).replace('T', ' ')} UTC, on ${machine}.`,
      '',
      ...page.about.flatMap((paragraph) => [paragraph, '']),
      '```text',
      ...this.lines.map((line) => line.replace(/\s+$/, '')),
      '```',
      '',
    ].join('\n');
    writeFileSync(path, body);
  }
}
