import { defineConfig } from 'vitest/config';

/**
 * The reliability suite (`npm run test:reliability`): fault matrix, fuzzing and the like under
 * test/reliability/. Kept out of `npm test` (see vitest.config.ts) because it is slower; .ci/run runs both.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    setupFiles: ['test/setup/fail-on-stopped-actor-warnings.ts'],
    globalSetup: ['test/setup/build-bundle.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // Real servers: separate processes, two at a time (2 cores).
    pool: 'forks',
    maxWorkers: 2,
  },
});
