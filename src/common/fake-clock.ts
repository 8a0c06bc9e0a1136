/**
 * A manual clock for tests of code that takes `now`, `setTimer` and `clearTimer`
 * (ControllerState, TransferProgress): `advance(ms)` runs the timers that fall due,
 * in time order, each with the clock set to its due time.
 */
export class FakeClock {
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  /**
   * How many ms after it is due (negative: before) each timer fires. Real timers run on
   * a monotonic clock, late when the event loop is busy, and may fire a millisecond
   * before Date.now says they are due; code that reads both must agree with itself.
   */
  skew = 0;

  constructor(public time = Date.UTC(2026, 0, 1)) {}

  now = (): number => this.time;

  setTimer = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { at: Math.max(this.time, this.time + Math.max(0, ms) + this.skew), fn });
    return id;
  };

  clearTimer = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  /** How many timers are armed. */
  get armed(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = target;
  }
}
