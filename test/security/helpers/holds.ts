/**
 * Checks `check` every `interval` ms for `ms` ms and throws at the first
 * false: how a test says "this never happens" within a window it names.
 */
export async function holds(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms: number,
  interval = 50,
): Promise<void> {
  const end = Date.now() + ms
  do {
    if (!(await check())) throw new Error(`expected ${what}, but it changed`)
    await new Promise((resolve) => setTimeout(resolve, interval))
  } while (Date.now() < end)
}
