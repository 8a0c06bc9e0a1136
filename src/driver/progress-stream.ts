/**
 * Progress of one transfer, on stderr: on a terminal a single line redrawn in
 * place (bytes, rate, percentage and time left when the total is known); elsewhere
 * nothing until the end. Either way the transfer ends with one summary line, so
 * logs of scripted runs stay short.
 */

type Out = Pick<NodeJS.WriteStream, "write"> & { isTTY?: boolean; columns?: number };

/** How far back the displayed rate looks: long enough to be steady, short enough to follow changes. */
const RATE_WINDOW_MS = 3000;
const REDRAW_MS = 200;

export interface ProgressOptions {
  /** What is moving, e.g. `flash disk.img`. */
  label: string;
  /** The expected number of bytes, when known (enables percentage and time left). */
  total?: number;
}

/** The time TransferProgress reads and the timer it redraws on (tests pass a FakeClock). */
export interface ProgressClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

const REAL_CLOCK: ProgressClock = {
  now: () => performance.now(),
  // A transfer that hangs must not be what keeps the process alive.
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class TransferProgress {
  private bytes = 0;
  private readonly started: number;
  private readonly samples: [ms: number, bytes: number][] = [];
  private timer: unknown;
  private drawn = false;
  private ended = false;

  constructor(
    private readonly options: ProgressOptions,
    private readonly out: Out = process.stderr,
    interactive = Boolean(out.isTTY) && process.env.TERM !== "dumb",
    private readonly clock: ProgressClock = REAL_CLOCK,
  ) {
    this.started = clock.now();
    if (interactive) this.redrawLater();
  }

  private redrawLater(): void {
    this.timer = this.clock.setTimer(() => {
      this.draw();
      this.redrawLater();
    }, REDRAW_MS);
  }

  /** The running count of bytes moved. */
  update(bytes: number): void {
    this.bytes = bytes;
  }

  /** Ends the display with one summary line: size, time, average rate, then `detail`. */
  finish(detail?: string): void {
    if (this.ended) return;
    this.stop();
    const seconds = (this.clock.now() - this.started) / 1000;
    const summary = `${this.options.label}: ${formatTransfer(this.bytes, seconds)}`;
    this.out.write(`${detail ? `${summary}, ${detail}` : summary}\n`);
  }

  /** Ends the display without a summary (the transfer failed or was given up). */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    if (this.drawn) this.out.write("\r\x1b[2K");
  }

  private draw(): void {
    const now = this.clock.now();
    this.samples.push([now, this.bytes]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > RATE_WINDOW_MS) this.samples.shift();
    const [since, from] = this.samples[0]!;
    const rate = now > since ? ((this.bytes - from) * 1000) / (now - since) : 0;
    const { label, total } = this.options;
    const parts = [label, total === undefined ? formatBytes(this.bytes) : `${formatBytes(this.bytes)} / ${formatBytes(total)}`];
    if (total) parts.push(`${Math.min(100, Math.floor((this.bytes * 100) / total))}%`);
    parts.push(`${formatBytes(rate)}/s`);
    if (total && rate > 0 && this.bytes < total) parts.push(`ETA ${formatDuration((total - this.bytes) / rate)}`);
    // A line wider than the terminal wraps, and `\r` then redraws only its tail.
    const width = (this.out.columns || 80) - 1;
    this.out.write(`\r\x1b[2K${parts.join("  ").slice(0, width)}`);
    this.drawn = true;
  }
}

/** Bytes in binary units, one decimal: `256.0 MiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/**
 * `256.0 MiB in 1.28 s (200.0 MiB/s)`: hundredths under 10 s, since a flash of a
 * few hundred MiB takes half a second and tenths would round its time by up to 10%.
 */
export function formatTransfer(bytes: number, seconds: number): string {
  const rate = seconds > 0 ? bytes / seconds : 0;
  return `${formatBytes(bytes)} in ${seconds.toFixed(seconds < 10 ? 2 : 1)} s (${formatBytes(rate)}/s)`;
}

/** `m:ss`, or `h:mm:ss` from an hour up. */
export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
