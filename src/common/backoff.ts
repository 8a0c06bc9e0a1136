/**
 * The one retry policy of jmp: exponential backoff with jitter, capped, and
 * forgotten once a connection has stayed up for a while. Every loop that talks to
 * the controller uses it: the exporter's (Register + Status, Listen, ReportStatus)
 * and the client's (waiting for a lease through a controller restart).
 */

/**
 * The default cap. A peer that comes back is found within 5 s of its return (an
 * exporter re-registers that soon after a controller restart), however long it was
 * away: with a 30 s cap, an exporter that had failed six times in a row (a long
 * outage, or a few restarts within half a minute) slept up to 30 s more after the
 * controller was back. A refused connection every 4 s costs a waiting peer nothing.
 */
export const MAX_DELAY_MS = 4_000;

export interface BackoffOptions {
  /** First delay. */
  initialMs?: number;
  /** Largest delay (default {@link MAX_DELAY_MS}). */
  maxMs?: number;
  factor?: number;
  /** Each delay is moved by up to this fraction either way, so restarted exporters do not retry in step. */
  jitter?: number;
  /** A connection that lasted this long counts as healthy: the next failure starts from `initialMs` again. */
  stableMs?: number;
  /** Injected in tests. */
  random?: () => number;
  now?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly stableMs: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private attempt = 0;
  private connectedAt?: number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? MAX_DELAY_MS;
    this.factor = opts.factor ?? 2;
    this.jitter = opts.jitter ?? 0.2;
    this.stableMs = opts.stableMs ?? 30_000;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
  }

  /** Call when a connection is up (a stream delivered its first message, a call succeeded). */
  connected(): void {
    this.connectedAt = this.now();
  }

  /** Forget past failures at once (a unary call that succeeded). */
  reset(): void {
    this.attempt = 0;
    this.connectedAt = undefined;
  }

  /** The delay before the next attempt, after a failure. */
  next(): number {
    if (this.connectedAt !== undefined && this.now() - this.connectedAt >= this.stableMs) this.attempt = 0;
    this.connectedAt = undefined;
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt += 1;
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.max(0, Math.min(this.maxMs, Math.round(base + spread)));
  }
}

/** Waits `ms`, or less if `signal` aborts; true when the full time passed. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (full: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(full);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `2345` → `2.3s`, for "retrying in …" log lines. */
export function formatDelay(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
