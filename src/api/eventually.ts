/**
 * Polls a check until it passes: `await eventually(() => expect(x).toBe(1))`.
 * A check passes when it returns (or resolves) without throwing; its value is returned.
 */
export interface EventuallyOptions {
  /** Give up after this many milliseconds (default 10 000). */
  timeout?: number;
  /** Wait this long between tries (default 100 ms). */
  interval?: number;
}

export async function eventually<T>(check: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeout = opts.timeout ?? 10_000;
  const interval = opts.interval ?? 100;
  if (!(timeout >= 0) || !(interval > 0)) throw new RangeError(`eventually: timeout must be >= 0 and interval > 0 (got ${timeout}, ${interval})`);
  const deadline = performance.now() + timeout;
  let tries = 0;
  for (;;) {
    tries++;
    try {
      return await check();
    } catch (e) {
      if (performance.now() + interval > deadline) {
        const last = e instanceof Error ? e.message : String(e);
        throw new Error(`still failing after ${(timeout / 1000).toFixed(1)} s (${tries} tries): ${last}`, { cause: e });
      }
    }
    await Bun.sleep(interval);
  }
}
