import fc from 'fast-check';

/**
 * How every fuzz property of the reliability suite runs: a fixed seed and a bounded number of runs, so
 * a run is deterministic and fits the suite's time (fast-check prints the seed and the shrunk
 * counterexample on a failure); each run has a deadline (`fc.timeout`: a hang is a failure, not a
 * stuck test) and the whole property a time budget (`fc.interruptAfterTimeLimit` with
 * `failOnInterrupt`: running out of it is a failure too, never a silent pass on fewer runs).
 */
export interface FuzzBudget {
  seed: number;
  numRuns: number;
  /** Deadline of one run (async properties; a synchronous run cannot be interrupted). */
  runMs: number;
  /** Budget of the whole property, shrinking included. */
  totalMs: number;
}

export function fuzzParameters<T>(budget: FuzzBudget): fc.Parameters<T> {
  const { seed, numRuns, runMs, totalMs } = withOverrides(budget);
  return {
    seed,
    numRuns,
    plugins: [fc.timeout(runMs), fc.interruptAfterTimeLimit(totalMs, { failOnInterrupt: true })],
  };
}

/**
 * For a longer hunt by hand, never in CI: `FUZZ_SEED=123` replaces every seed, `FUZZ_SCALE=10` multiplies
 * the runs and the property budgets. Unset, every property runs exactly as written.
 */
function withOverrides(budget: FuzzBudget): FuzzBudget {
  const seed = process.env.FUZZ_SEED === undefined ? budget.seed : Number(process.env.FUZZ_SEED);
  const scale = process.env.FUZZ_SCALE === undefined ? 1 : Number(process.env.FUZZ_SCALE);
  return { ...budget, seed, numRuns: Math.ceil(budget.numRuns * scale), totalMs: Math.ceil(budget.totalMs * scale) };
}

/** A test name that says the budget, so the verbose output shows what ran. */
export function runsOf(budget: FuzzBudget): string {
  const { seed, numRuns } = withOverrides(budget);
  return `${numRuns} runs, seed ${seed}`;
}

/**
 * Awkward strings: empty, NUL, lone surrogates, a BOM, prototype keys, control characters, long runs,
 * and arbitrary code points (the `binary` unit includes lone surrogates).
 */
export const awkwardString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\ufeff', '\r\n', '__proto__', 'toString', 'constructor', 'hasOwnProperty', '😀', '가나다'),
  fc.nat({ max: 70_000 }).map((n) => 'y'.repeat(n)),
);

/** Any JSON-ish value with the usual suspects for a field: wrong types, huge numbers, awkward strings. */
export const awkwardValue: fc.Arbitrary<unknown> = fc.oneof(
  awkwardString,
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 31 - 1, 2 ** 53, -(2 ** 53), 1e308, Number.MAX_SAFE_INTEGER),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.jsonValue({ maxDepth: 2 }),
);
