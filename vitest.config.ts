import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration and e2e suites start real agents; running many files at once on
    // two cores starves their timers, so files run one or two at a time.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
