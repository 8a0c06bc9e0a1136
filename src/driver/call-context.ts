/**
 * The signal of the call a driver method is serving: aborted when the client
 * cancels or goes away. Lets a driver stop waiting (a silent subprocess, a slow
 * device) at once instead of at its next yield.
 */
import { AsyncLocalStorage } from "node:async_hooks";

const current = new AsyncLocalStorage<AbortSignal>();
const never = new AbortController().signal;

/**
 * Inside an exported method: the current call's AbortSignal.
 * @example
 * @exported async *watch() { const signal = callSignal(); while (!signal.aborted) yield await next(signal); }
 */
export function callSignal(): AbortSignal {
  return current.getStore() ?? never;
}

export function runInCall<T>(signal: AbortSignal, fn: () => T): T {
  return current.run(signal, fn);
}

/** Drives an async iterator with every step inside the call's context (generator bodies do not inherit it). */
export async function* iterateInCall<T>(signal: AbortSignal, iterable: AsyncIterable<T>): AsyncGenerator<T> {
  const it = runInCall(signal, () => iterable[Symbol.asyncIterator]());
  try {
    for (;;) {
      const r = await runInCall(signal, () => it.next());
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await runInCall(signal, async () => it.return?.());
  }
}
