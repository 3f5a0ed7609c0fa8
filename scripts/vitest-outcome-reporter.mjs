// A vitest reporter for the test command (scripts/test.mjs): at the end of a run
// it writes each file's tests with their state and first error, the errors that
// happened outside any test, and the unhandled ones, to the JSON file named by
// SHOAL_TEST_OUTCOME. (vitest's JSON reporter prints a timed-out test's error as
// "STACK_TRACE_ERROR"; the reported-task API carries the real message.)
import { writeFileSync } from 'node:fs'

const message = (error) => String(error?.message ?? error ?? '')

export default class OutcomeReporter {
  onTestRunEnd(testModules, unhandledErrors, reason) {
    const path = process.env.SHOAL_TEST_OUTCOME
    if (path == null || path === '') return
    const modules = testModules.map((module) => {
      const errors = module.errors().map(message)
      for (const suite of module.children.allSuites())
        errors.push(...suite.errors().map((e) => `${suite.fullName}: ${message(e)}`))
      const tests = [...module.children.allTests()].map((test) => {
        const result = test.result()
        return { name: test.fullName, state: result.state, error: message(result.errors?.[0]) || undefined }
      })
      return { file: module.moduleId, state: module.state(), errors, tests }
    })
    writeFileSync(path, JSON.stringify({ reason, modules, unhandled: unhandledErrors.map(message) }))
  }
}
