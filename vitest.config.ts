import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores here: integration tests spawn trainers and worker threads of their own.
    maxWorkers: 2,
  },
});
