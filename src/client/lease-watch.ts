/**
 * A lease in use, watched until it is given back: looked at now and then (which
 * also tells the controller we are still here), extended before it ends when asked
 * to (auto-extend), warned about 5 and 1 minute before its end otherwise, and
 * reported once when it ends. `jmp shell` and the library's `lease()` both watch
 * their lease through here (LeaseHold.watch); time comes from an injected clock so
 * the tests run on a FakeClock.
 */
import { formatDuration } from "../common/duration.ts";
import { Backoff } from "../common/backoff.ts";
import { getLogger } from "../common/log.ts";
import { isTransient } from "./errors.ts";
import type { LeaseView } from "./leases.ts";

const log = getLogger("client");

/** How often a lease in use is looked at: a sign of presence, and how we learn it ended. */
export const WATCH_INTERVAL_MS = 5_000;
/** How long before its end a lease not being extended is warned about. */
export const ENDING_WARNINGS_MS: readonly number[] = [5 * 60_000, 60_000];
/**
 * The most time left at which an extension is asked for (a lease shorter than twice
 * this is extended at half its duration): room to keep trying through a controller
 * restart, and for the 5-minute warning to come at its time if the controller
 * refuses.
 */
export const MAX_EXTEND_LEAD_MS = 10 * 60_000;
/** A look this long after the expected end, so the end is reported as it happens, not up to an interval later. */
const END_LOOK_DELAY_MS = 250;
/** Extensions at most this often, whatever the controller answers. */
const MIN_EXTEND_GAP_MS = 1_000;

/** The time the watch reads and its timer (tests pass a FakeClock). Wall time: expiries come from the controller. */
export interface WatchClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

const WALL_CLOCK: WatchClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** The lease as the watch reaches it (LeaseApi calls naming it). */
export interface LeaseAccess {
  get(): Promise<LeaseView>;
  /** Sets the lease's total duration (UpdateLease), as `jmp lease update --extend` does. */
  setDuration(ms: number): Promise<LeaseView>;
}

/** What the user of a lease may ask of its watch: the options of `jmp shell` and `lease()`. */
export interface LeaseLifeOptions {
  /**
   * Extend the lease before it ends, by its duration when the watch started, for as
   * long as it is watched; stops (saying so through `onNotice`) when the controller
   * refuses an extension.
   */
  autoExtend?: boolean;
  /**
   * Called 5 minutes and 1 minute before the lease ends, once each, while it is not
   * being extended, with the time left. Thresholds already passed when the watch
   * starts (a lease shorter than 5 minutes) are not called; a lease extended past a
   * threshold is warned about again before its new end. Default: a warning on the
   * log naming the lease and how to extend it.
   */
  onEnding?: (remainingMs: number, lease: string) => void;
  /** Things said once: an extension refused. Default: a warning on the log. */
  onNotice?: (line: string) => void;
}

export interface WatchOptions extends LeaseLifeOptions {
  /** Called once when the lease is seen to have ended. */
  onEnd: (why: string) => void;
  clock?: WatchClock;
  intervalMs?: number;
  warningsMs?: readonly number[];
}

export class LeaseWatch {
  private readonly clock: WatchClock;
  private readonly intervalMs: number;
  private readonly warningsMs: readonly number[];
  /** What each extension adds. */
  readonly stepMs: number;
  /** Time left at which an extension is asked for. */
  readonly leadMs: number;
  private timer: unknown;
  private stopped = false;
  private busy = false;
  private expiresAt?: number;
  private extending: boolean;
  private nextLookAt: number;
  /** Not before then: a failed extension's backoff, or the gap after one that worked. */
  private extendNotBefore = 0;
  private readonly backoff: Backoff;
  /** Warning thresholds still to come for the current end. */
  private readonly pending = new Set<number>();

  constructor(readonly name: string, private readonly lease: LeaseAccess, view: LeaseView, private readonly opts: WatchOptions) {
    this.clock = opts.clock ?? WALL_CLOCK;
    this.intervalMs = opts.intervalMs ?? WATCH_INTERVAL_MS;
    this.warningsMs = [...(opts.warningsMs ?? ENDING_WARNINGS_MS)].sort((a, b) => b - a);
    this.stepMs = view.durationMs ?? 0;
    this.leadMs = Math.min(this.stepMs / 2, MAX_EXTEND_LEAD_MS);
    this.extending = Boolean(opts.autoExtend) && this.stepMs > 0;
    this.backoff = new Backoff({ initialMs: 250, maxMs: 4_000, now: this.clock.now });
    this.expiresAt = view.expiresAt?.getTime();
    this.nextLookAt = this.clock.now() + this.intervalMs;
    if (!this.extending) this.armWarnings();
  }

  /** Whether extensions are still being made (auto-extend asked and not refused). */
  get autoExtending(): boolean {
    return this.extending;
  }

  start(): this {
    this.schedule();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimer(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.clock.clearTimer(this.timer);
    const now = this.clock.now();
    let at = this.nextLookAt;
    if (this.expiresAt !== undefined) {
      if (this.extending) at = Math.min(at, Math.max(this.expiresAt - this.leadMs, this.extendNotBefore));
      else for (const t of this.pending) at = Math.min(at, this.expiresAt - t);
    }
    this.timer = this.clock.setTimer(() => void this.tick(), Math.max(0, at - now));
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.busy) return;
    this.busy = true;
    try {
      this.warn();
      const now = this.clock.now();
      if (this.extending && this.expiresAt !== undefined && now >= this.expiresAt - this.leadMs && now >= this.extendNotBefore) {
        await this.extend();
      } else if (now >= this.nextLookAt) {
        await this.look();
      }
      this.warn();
    } catch (e) {
      // Nothing here may end the session: a watch that fails says so and goes on.
      log.debug(`watching lease ${this.name}: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
    this.schedule();
  }

  /** Looks at the lease; the next look is an interval later, or just after its end if that comes first. */
  private async look(): Promise<void> {
    try {
      this.seen(await this.lease.get());
    } catch (e) {
      if (!isTransient(e)) log.debug(`lease ${this.name}: ${(e as Error).message}`);
    }
    const now = this.clock.now();
    this.nextLookAt = now + this.intervalMs;
    if (this.expiresAt !== undefined && this.expiresAt + END_LOOK_DELAY_MS > now) {
      this.nextLookAt = Math.min(this.nextLookAt, this.expiresAt + END_LOOK_DELAY_MS);
    }
  }

  /**
   * Adds a step to the lease's duration as the controller has it now (so an
   * extension someone made meanwhile is kept, and a retry after a lost answer
   * finds the lease extended already instead of extending it twice).
   */
  private async extend(): Promise<void> {
    const before = this.expiresAt;
    let asked: number;
    let after: LeaseView;
    try {
      const fresh = await this.lease.get();
      if (!this.seen(fresh)) return;
      if (this.expiresAt !== undefined && this.expiresAt - this.clock.now() > this.leadMs) return;
      asked = (fresh.durationMs ?? 0) + this.stepMs;
      after = await this.lease.setDuration(asked);
    } catch (e) {
      if (isTransient(e)) {
        // A controller restart or a blip: try again soon; the lead leaves room for it.
        const delay = this.backoff.next();
        log.debug(`extending lease ${this.name}: ${(e as Error).message}; trying again in ${formatDuration(delay)}`);
        this.extendNotBefore = this.clock.now() + delay;
        return;
      }
      // Refused. A lease that has ended meanwhile is reported as such, not as a refusal.
      const now = await this.lease.get().catch(() => undefined);
      if (now && !this.seen(now)) return;
      this.stopExtending(`cannot extend lease ${this.name}: ${(e as Error).message}`);
      return;
    }
    this.backoff.reset();
    this.extendNotBefore = this.clock.now() + MIN_EXTEND_GAP_MS;
    if (!this.seen(after)) return;
    if (before !== undefined && (this.expiresAt === undefined || this.expiresAt <= before)) {
      this.stopExtending(`the controller did not extend lease ${this.name} (asked for ${formatDuration(asked)} in all)`);
      return;
    }
    log.debug(`extended lease ${this.name} to ${formatDuration(after.durationMs ?? asked)}`);
  }

  /** Takes in what the controller says of the lease; false (after calling onEnd once) when it has ended. */
  private seen(view: LeaseView): boolean {
    if (this.stopped) return false;
    if (view.state !== "Ready") {
      this.stop();
      this.opts.onEnd(`lease ${this.name} ended${view.reason ? ` (${view.reason})` : ""}`);
      return false;
    }
    const expiresAt = view.expiresAt?.getTime();
    const later = expiresAt !== undefined && (this.expiresAt === undefined || expiresAt > this.expiresAt);
    this.expiresAt = expiresAt;
    // Extended (by us or by hand) past a threshold: its warning comes again before the new end.
    if (later && !this.extending) this.armWarnings();
    return true;
  }

  private armWarnings(): void {
    if (this.expiresAt === undefined) return;
    const left = this.expiresAt - this.clock.now();
    for (const t of this.warningsMs) if (left > t) this.pending.add(t);
  }

  /** Once per threshold crossed; several crossed at once (a lease shortened) make one call. */
  private warn(): void {
    if (this.extending || this.expiresAt === undefined || this.stopped) return;
    const left = this.expiresAt - this.clock.now();
    const crossed = [...this.pending].filter((t) => left <= t);
    if (crossed.length === 0) return;
    for (const t of crossed) this.pending.delete(t);
    const remaining = Math.max(0, left);
    this.call(() => (this.opts.onEnding ?? (() => log.warn(endingLine(this.name, remaining, this.stepMs, this.clock.now()))))(remaining, this.name));
  }

  private stopExtending(why: string): void {
    this.extending = false;
    this.armWarnings();
    const left = this.expiresAt !== undefined ? this.expiresAt - this.clock.now() : undefined;
    const when = left !== undefined ? `; it ends in ${formatDuration(Math.max(0, left))} (at ${clockTime(this.expiresAt!)})` : "";
    const line = `${why}${when}; no longer extending it`;
    this.call(() => (this.opts.onNotice ?? ((l: string) => log.warn(l)))(line));
  }

  /** A callback that throws must not stop the watch (nor the session). */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      log.debug(`lease ${this.name}: a callback failed: ${(e as Error).message}`);
    }
  }
}

/** `10:42:13`, local time: when a lease ends, as a person reads a clock. */
export function clockTime(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/** The line a person reads before a lease ends: when, and how to keep it. */
export function endingLine(lease: string, remainingMs: number, stepMs: number, now = Date.now()): string {
  const step = formatDuration(stepMs >= 60_000 ? stepMs : 30 * 60_000);
  return `lease ${lease} ends in ${formatDuration(Math.max(1000, Math.round(remainingMs / 1000) * 1000))} (at ${clockTime(now + remainingMs)}); ` +
    `to keep it: jmp lease update ${lease} --extend ${step}`;
}
