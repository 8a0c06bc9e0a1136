/**
 * Per-lease queues of router assignments: Dial puts one in, the exporter's Listen
 * stream takes it out. In memory, as upstream's; a lease's queue is closed when
 * its listener leaves.
 */
export interface RouterAssignment {
  routerEndpoint: string;
  routerToken: string;
}

interface Listener {
  push(a: RouterAssignment): void;
}

export class ListenQueues {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly waiters = new Map<string, Set<() => void>>();

  /** Registers a Listen stream for a lease; returns its async iterable and a closer. */
  listen(key: string, signal: AbortSignal): AsyncIterable<RouterAssignment> {
    const queue: RouterAssignment[] = [];
    let wake: (() => void) | undefined;
    const listener: Listener = { push: (a) => { queue.push(a); wake?.(); } };
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    for (const w of this.waiters.get(key) ?? []) w();
    this.waiters.delete(key);
    const remove = () => {
      set!.delete(listener);
      if (set!.size === 0) this.listeners.delete(key);
      wake?.();
    };
    signal.addEventListener("abort", remove, { once: true });
    return {
      [Symbol.asyncIterator]: async function* () {
        try {
          while (!signal.aborted) {
            const next = queue.shift();
            if (next) {
              yield next;
              continue;
            }
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
          }
        } finally {
          remove();
        }
      },
    };
  }

  /**
   * Hands an assignment to the lease's newest listener, waiting up to `waitMs` for one
   * to appear; false when none came in time or `signal` gave up first. The newest: an
   * exporter listens once per registration, so an older Listen stream for the same
   * lease is one it gave up, on a connection that may be dead without either end
   * knowing yet (a pulled cable); handed to that one, a Dial waited in vain.
   */
  async dispatch(key: string, a: RouterAssignment, waitMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const set = this.listeners.get(key);
      const newest = set ? [...set].at(-1) : undefined;
      if (newest) {
        newest.push(a);
        return true;
      }
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const waiters = this.waiters.get(key) ?? new Set<() => void>();
        this.waiters.set(key, waiters);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          if (waiters.size === 0 && this.waiters.get(key) === waiters) this.waiters.delete(key);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        waiters.add(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  hasListener(key: string): boolean {
    return (this.listeners.get(key)?.size ?? 0) > 0;
  }
}
