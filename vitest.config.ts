import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The reliability suite has its own config and command (vitest.reliability.config.ts).
    exclude: [...configDefaults.exclude, 'test/reliability/**'],
    setupFiles: ['test/setup/fail-on-stopped-actor-warnings.ts'],
    globalSetup: ['test/setup/build-bundle.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Real servers and databases: keep files in separate processes, two at a time (2 cores).
    pool: 'forks',
    maxWorkers: 2,
  },
});
