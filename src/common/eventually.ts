/**
 * Polls a check until it passes: `await eventually(() => expect(x).toBe(1))`.
 * A check passes when it returns (or resolves) without throwing; its value is returned.
 * For what a test cannot be told about (another process, a device): where the code
 * under test gives an event or a promise, wait on that instead.
 */
export interface EventuallyOptions {
  /** Give up after this many milliseconds (default 10 000). */
  timeout?: number;
  /** Wait this long between tries (default 100 ms). */
  interval?: number;
  /** What the check waits for, named in the error when it gives up (`"pi-1 to be online"`). */
  what?: string;
  /** Stop trying when it aborts (say, the process being watched exited): fails at once with its reason. */
  signal?: AbortSignal;
}

export async function eventually<T>(check: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeout = opts.timeout ?? 10_000;
  const interval = opts.interval ?? 100;
  if (!(timeout >= 0) || !(interval > 0)) throw new RangeError(`eventually: timeout must be >= 0 and interval > 0 (got ${timeout}, ${interval})`);
  const { signal } = opts;
  const deadline = performance.now() + timeout;
  let tries = 0;
  for (;;) {
    stopIfAborted(signal);
    tries++;
    try {
      return await check();
    } catch (e) {
      if (performance.now() + interval > deadline) {
        const last = e instanceof Error ? e.message : String(e);
        const waiting = opts.what ? `waiting for ${opts.what}: ` : "";
        throw new Error(`${waiting}still failing after ${(timeout / 1000).toFixed(1)} s (${tries} tries): ${last}`, { cause: e });
      }
    }
    await pause(interval, signal);
  }
}

function stopIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? "aborted"));
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
