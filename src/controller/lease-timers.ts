/**
 * One timer per open lease, for the next moment it needs attention: its requested
 * begin while it waits for one, else its expiry. Timers live only in memory; the
 * controller re-arms them from the store at start.
 */
import { getLogger } from "../common/log.ts";
import { leaseExpiresAt } from "./lease-rules.ts";
import type { Lease } from "./model.ts";

export interface TimerFunctions {
  now: () => number;
  setTimer: (fn: () => void, ms: number) => unknown;
  clearTimer: (handle: unknown) => void;
}

/** Node timers overflow past 2^31-1 ms (~24.8 days); longer waits wake early and re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_MS = 1000;
const log = getLogger("controller");

/** When a lease next needs attention, or undefined if only an event can change it. */
function wakeTime(lease: Lease, now: number): number | undefined {
  if (lease.ended) return undefined;
  if (lease.exporter === undefined && lease.beginTime !== undefined && lease.beginTime > now) return lease.beginTime;
  return leaseExpiresAt(lease);
}

export class LeaseTimers {
  private readonly timers = new Map<string, { at: number; handle: unknown }>();
  private active = false;

  /**
   * `wake` serves the lease's namespace and returns the lease as it is now (null if it
   * is gone); if it throws, it is tried again a second later.
   */
  constructor(
    private readonly fns: TimerFunctions,
    private readonly wake: (namespace: string, name: string) => Promise<Lease | null>,
  ) {}

  start(): void {
    this.active = true;
  }

  stop(): void {
    this.active = false;
    for (const { handle } of this.timers.values()) this.fns.clearTimer(handle);
    this.timers.clear();
  }

  /** (Re)arms the lease's timer for its current state; a no-op when nothing changed. */
  arm(lease: Lease): void {
    const k = `${lease.namespace}/${lease.name}`;
    const at = this.active ? wakeTime(lease, this.fns.now()) : undefined;
    const existing = this.timers.get(k);
    if (existing && existing.at === at) return;
    if (existing) {
      this.fns.clearTimer(existing.handle);
      this.timers.delete(k);
    }
    if (at !== undefined) this.set(lease.namespace, lease.name, at);
  }

  private set(namespace: string, name: string, at: number): void {
    const delay = Math.min(Math.max(at - this.fns.now(), 0), MAX_TIMER_MS);
    const handle = this.fns.setTimer(() => this.fire(namespace, name, at), delay);
    this.timers.set(`${namespace}/${name}`, { at, handle });
  }

  private fire(namespace: string, name: string, at: number): void {
    this.timers.delete(`${namespace}/${name}`);
    if (!this.active) return;
    // Woken early (a long wait is cut into MAX_TIMER_MS pieces): nothing is due yet.
    if (this.fns.now() < at) return this.set(namespace, name, at);
    this.wake(namespace, name).then(
      // Re-arm even if the pass changed nothing: the timer may have woken early.
      (lease) => {
        if (lease && this.active) this.arm(lease);
      },
      (err) => {
        if (!this.active) return;
        log.error(`lease timer for ${namespace}/${name} failed, retrying in 1 s: ${(err as Error).message}`);
        this.set(namespace, name, this.fns.now() + RETRY_MS);
      },
    );
  }
}
