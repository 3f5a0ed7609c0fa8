import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A timeout is a hang detector, not a speed assertion: on a loaded 2-core machine
    // the agents' tests run 10-15 times slower than alone (runtime.test.ts's 3.5 s
    // rollout test took 46 s with four busy processes beside it). Tests and hooks take
    // this one default; a test sets its own only when it needs more.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration and e2e suites start real agents; running many files at once on
    // two cores starves their timers, so files run one or two at a time. The
    // rolling-update-under-load e2e file (5 agents, the LB and a steady load) and the
    // dashboard's browser test run alone after the rest (scripts/test.mjs, RUN_ALONE):
    // sharing 2 cores with another heavy file caused false failure verdicts that the
    // rolling test rightly counts.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
