/** Polls `check` until it returns a truthy value (returned) or the deadline passes (throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeout = 60_000, interval = 25 }: { timeout?: number; interval?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value) return value as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeout} ms waiting for ${what}${last == null ? '' : ` (last error: ${String(last)})`}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}
