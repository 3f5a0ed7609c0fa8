import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration and e2e suites start real agents; running many files at once on
    // two cores starves their timers, so files run one or two at a time. The
    // rolling-update-under-load e2e file (5 agents, the LB and a steady load) runs
    // alone after the rest (package.json "test"): sharing 2 cores with another
    // heavy file caused false failure verdicts that it rightly counts.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
