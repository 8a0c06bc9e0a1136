/**
 * One requested GPIO line: found on its chip by number or name, checked (the chip
 * exists and may be opened, the line exists and nobody else holds it), requested
 * with its direction, bias, drive and active-low setting, then read, set and
 * watched for edges until it is released.
 */
import { readdirSync } from "node:fs";
import {
  config, DeadlineExceededError, DriverError, InvalidArgumentError, UnavailableError,
} from "@jumpstarter/driver";
import { closeFd, ioctl, O, openPath, readFd, setNonBlocking, SyscallError } from "../native/libc.ts";
import {
  CHIPINFO_SIZE, decodeChipInfo, decodeEvents, decodeLineInfo, decodeLineValue, encodeLineRequest, encodeLineValues,
  GPIO_GET_CHIPINFO_IOCTL, GPIO_V2_GET_LINE_IOCTL, GPIO_V2_GET_LINEINFO_IOCTL, GPIO_V2_LINE_GET_VALUES_IOCTL,
  GPIO_V2_LINE_SET_VALUES_IOCTL, LINE_EVENT_SIZE, LINE_VALUES_SIZE, LineFlag, lineInfoRequest, requestFd,
  type ChipInfo, type LineEvent, type LineInfo,
} from "./uapi.ts";

export const BIASES = ["as_is", "pull_up", "pull_down", "disabled"] as const;
export const DRIVES = ["push_pull", "open_drain", "open_source"] as const;
export type Bias = (typeof BIASES)[number];
export type Drive = (typeof DRIVES)[number];

export interface LineSpec {
  /** The chip: a path, `gpiochipN`, or N. */
  device: string | number;
  /** The line's offset on the chip, or its name. */
  line: number | string;
  activeLow: boolean;
  bias: Bias;
  direction: "input" | "output";
  /** Outputs only. */
  drive?: Drive;
  /** Outputs only: the value from the first instant, 1 being active. */
  initialValue?: 0 | 1;
}

/** Who we say holds a line (`gpioinfo` shows it): this process. */
export const CONSUMER = `jmp[${process.pid}]`;

const BIAS_FLAGS: Record<Bias, bigint> = {
  as_is: 0n,
  pull_up: LineFlag.BIAS_PULL_UP,
  pull_down: LineFlag.BIAS_PULL_DOWN,
  disabled: LineFlag.BIAS_DISABLED,
};
const DRIVE_FLAGS: Record<Drive, bigint> = { push_pull: 0n, open_drain: LineFlag.OPEN_DRAIN, open_source: LineFlag.OPEN_SOURCE };

/** `device:` as upstream takes it: a path, or a chip number. */
export function chipPath(device: string | number): string {
  if (typeof device === "number") return `/dev/gpiochip${device}`;
  return /^gpiochip\d+$/.test(device) ? `/dev/${device}` : device;
}

/** The request flags for a spec, as the kernel checks them (gpio_v2_line_flags_validate). */
export function requestFlags(spec: LineSpec): bigint {
  let flags = spec.direction === "output" ? LineFlag.OUTPUT : LineFlag.INPUT | LineFlag.EDGE_RISING | LineFlag.EDGE_FALLING;
  if (spec.activeLow) flags |= LineFlag.ACTIVE_LOW;
  flags |= BIAS_FLAGS[spec.bias];
  if (spec.direction === "output") flags |= DRIVE_FLAGS[spec.drive ?? "push_pull"];
  return flags;
}

export class GpioLine {
  private released = false;
  private readonly watches = new Set<EdgeWatch>();
  private pump?: { reader: ReadableStreamDefaultReader<Uint8Array>; done: Promise<void> };

  private constructor(
    readonly chip: string,
    readonly chipInfo: ChipInfo,
    readonly info: LineInfo,
    private readonly chipFd: number,
    private readonly lineFd: number,
  ) {}

  /** `line 17 (RELAY1) of /dev/gpiochip0`, for messages. */
  get description(): string {
    return `line ${this.info.offset}${this.info.name ? ` (${this.info.name})` : ""} of ${this.chip}`;
  }

  /**
   * Opens the chip, finds and checks the line and requests it. Throws with what
   * is wrong and what to do: a missing chip, permissions, a line that does not
   * exist, a line someone else holds.
   */
  static request(spec: LineSpec): GpioLine {
    const chip = chipPath(spec.device);
    const chipFd = openChip(chip);
    try {
      const chipInfo = readChipInfo(chipFd, chip);
      const info = findLine(chipFd, chip, chipInfo, spec.line);
      if (info.flags & LineFlag.USED) throw inUse(chip, info);
      const flags = requestFlags(spec);
      const request = encodeLineRequest({
        offset: info.offset,
        consumer: CONSUMER,
        flags,
        outputValue: spec.direction === "output" ? (spec.initialValue ?? 0) : undefined,
      });
      try {
        ioctl(chipFd, GPIO_V2_GET_LINE_IOCTL, request, "GPIO_V2_GET_LINE_IOCTL");
      } catch (e) {
        if (e instanceof SyscallError && e.code === "EBUSY") throw inUse(chip, lineInfo(chipFd, chip, info.offset));
        throw refused(chip, info, spec, e as Error);
      }
      const lineFd = requestFd(request);
      if (spec.direction === "input") setNonBlocking(lineFd);
      // The chip stays open with the line, as libgpiod's chip object does: line info
      // for messages later, and one close for both at the end.
      return new GpioLine(chip, chipInfo, info, chipFd, lineFd);
    } catch (e) {
      closeFd(chipFd);
      throw e;
    }
  }

  /** The line's logical value: 1 when active (active_low applied by the kernel). */
  get(): 0 | 1 {
    this.checkOpen();
    const values = encodeLineValues(0);
    ioctl(this.lineFd, GPIO_V2_LINE_GET_VALUES_IOCTL, values, `reading ${this.description}`);
    return decodeLineValue(values);
  }

  /** Drives an output: 1 is active. */
  set(value: 0 | 1): void {
    this.checkOpen();
    ioctl(this.lineFd, GPIO_V2_LINE_SET_VALUES_IOCTL, encodeLineValues(value), `setting ${this.description}`);
  }

  /**
   * Starts collecting edge events: from here on, no change of the line is missed.
   * Events that happened before are dropped (a press an hour ago is not an edge
   * now). Close the watch when done.
   */
  watch(): EdgeWatch {
    this.checkOpen();
    if (this.watches.size === 0 && !this.pump) this.drainStaleEvents();
    const w = new EdgeWatch(() => this.unwatch(w), this.description);
    this.watches.add(w);
    if (!this.pump) this.startPump();
    return w;
  }

  private drainStaleEvents(): void {
    const buf = new Uint8Array(LINE_EVENT_SIZE * 16);
    while (readFd(this.lineFd, buf, `reading events of ${this.description}`) !== undefined) {
      // dropped: they happened before anyone asked
    }
  }

  private startPump(): void {
    // Bun polls the non-blocking fd in its event loop and reads when it is readable.
    const reader = Bun.file(this.lineFd).stream().getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const done = (async () => {
      let pending = new Uint8Array(0);
      try {
        for (;;) {
          const { value, done: ended } = await reader.read();
          if (ended || !value) break;
          const joined = new Uint8Array(pending.byteLength + value.byteLength);
          joined.set(pending);
          joined.set(value, pending.byteLength);
          const { events, rest } = decodeEvents(joined);
          pending = rest.slice();
          for (const e of events) for (const w of this.watches) w.push(e);
        }
      } catch (e) {
        if (!this.released) for (const w of this.watches) w.fail(new UnavailableError(`reading events of ${this.description} failed: ${(e as Error).message}`));
      }
    })();
    this.pump = { reader, done };
  }

  private unwatch(w: EdgeWatch): void {
    this.watches.delete(w);
    if (this.watches.size === 0) void this.stopPump();
  }

  private async stopPump(): Promise<void> {
    const pump = this.pump;
    if (!pump) return;
    // Stop Bun's read before anything else touches the fd (a drain, a close).
    await pump.reader.cancel().catch(() => {});
    await pump.done;
    if (this.pump === pump) this.pump = undefined;
  }

  /** Releases the line and closes the chip; waits in progress fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    for (const w of this.watches) w.fail(new UnavailableError(`${this.description} was released (the session ended)`));
    this.watches.clear();
    await this.stopPump();
    closeFd(this.lineFd);
    // Under umockdev the line fd is the chip fd itself (see testing/umockdev-gpiochip.py);
    // closing that number twice could close a file another thread has just opened.
    if (this.chipFd !== this.lineFd) closeFd(this.chipFd);
  }

  private checkOpen(): void {
    if (this.released) throw new UnavailableError(`${this.description} was released (the session ended)`);
  }
}

/** Events of one line from one point on, for one waiter. */
export class EdgeWatch {
  private readonly queue: LineEvent[] = [];
  private failure?: Error;
  private wake?: () => void;

  constructor(
    private readonly leave: () => void,
    private readonly what: string,
  ) {}

  push(e: LineEvent): void {
    this.queue.push(e);
    this.wake?.();
  }

  fail(e: Error): void {
    this.failure ??= e;
    this.wake?.();
  }

  /**
   * The first event that `match` accepts. `timeoutS` undefined waits for good; on
   * timeout, DeadlineExceededError with `expected` in the message. The signal (the
   * call's) ends the wait early.
   */
  async next(match: (e: LineEvent) => boolean, timeoutS: number | undefined, expected: string, signal: AbortSignal): Promise<LineEvent> {
    const deadline = timeoutS === undefined ? undefined : Date.now() + timeoutS * 1000;
    for (;;) {
      const i = this.queue.findIndex(match);
      if (i !== -1) return this.queue.splice(0, i + 1).pop()!;
      this.queue.length = 0;
      if (this.failure) throw this.failure;
      if (signal.aborted) throw new DriverError(`waiting for ${expected} on ${this.what} was cancelled`);
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) throw new DeadlineExceededError(`no ${expected} on ${this.what} within ${formatSeconds(timeoutS!)}`);
      await new Promise<void>((resolve) => {
        const timer = left === undefined ? undefined : setTimeout(resolve, left);
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  close(): void {
    this.leave();
  }
}

function formatSeconds(s: number): string {
  return `${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, "")} s`;
}

function openChip(chip: string): number {
  try {
    return openPath(chip, O.RDWR);
  } catch (e) {
    const code = (e as SyscallError).code;
    if (code === "ENOENT" || code === "ENXIO" || code === "ENODEV") {
      throw new UnavailableError(`${chip} does not exist (${chipsHere()})`);
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new UnavailableError(`${chip}: permission denied (add the user to group gpio)`);
    }
    throw new UnavailableError(`cannot open ${chip}: ${code}`);
  }
}

function chipsHere(): string {
  let chips: string[] = [];
  try {
    chips = readdirSync("/dev").filter((n) => /^gpiochip\d+$/.test(n)).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
  } catch {
    // no /dev to list: say nothing about it
  }
  return chips.length
    ? `GPIO chips here: ${chips.map((c) => `/dev/${c}`).join(", ")}`
    : "this machine has no /dev/gpiochip*: is its GPIO controller's kernel driver loaded?";
}

function readChipInfo(fd: number, chip: string): ChipInfo {
  const buf = new Uint8Array(CHIPINFO_SIZE);
  try {
    ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, buf, "GPIO_GET_CHIPINFO_IOCTL");
  } catch (e) {
    const code = (e as SyscallError).code;
    if (code === "ENOTTY" || code === "EINVAL") {
      throw new InvalidArgumentError(`${chip} is not a GPIO chip (it does not answer GPIO_GET_CHIPINFO_IOCTL: ${code}); use a /dev/gpiochipN`);
    }
    throw new UnavailableError(`reading ${chip}'s chip info failed: ${code}`);
  }
  return decodeChipInfo(buf);
}

function lineInfo(fd: number, chip: string, offset: number): LineInfo {
  const buf = lineInfoRequest(offset);
  try {
    ioctl(fd, GPIO_V2_GET_LINEINFO_IOCTL, buf, "GPIO_V2_GET_LINEINFO_IOCTL");
  } catch (e) {
    throw new UnavailableError(`reading line ${offset} of ${chip} failed: ${(e as SyscallError).code}`);
  }
  return decodeLineInfo(buf);
}

function chipName(chip: string, info: ChipInfo): string {
  return info.label ? `${chip} (${info.label})` : chip;
}

function findLine(fd: number, chip: string, info: ChipInfo, line: number | string): LineInfo {
  if (typeof line === "number") {
    if (line >= info.lines) {
      throw new InvalidArgumentError(`${chipName(chip, info)} has lines 0 to ${info.lines - 1}; there is no line ${line}`);
    }
    return lineInfo(fd, chip, line);
  }
  const all: LineInfo[] = [];
  for (let offset = 0; offset < info.lines; offset++) {
    const l = lineInfo(fd, chip, offset);
    // The first of equal names, as libgpiod's lookup.
    if (l.name === line) return l;
    all.push(l);
  }
  throw new InvalidArgumentError(`${chipName(chip, info)} has no line named "${line}"; ${namesNear(line, all, chip)}`);
}

/** The named lines a misspelt name may have meant, or all of them when there are few. */
function namesNear(name: string, lines: LineInfo[], chip: string): string {
  const named = lines.filter((l) => l.name);
  if (named.length === 0) return `its ${lines.length} lines have no names: give the line's number`;
  const lower = name.toLowerCase();
  const near = named.filter((l) => {
    const n = l.name.toLowerCase();
    return n.includes(lower) || lower.includes(n) || config.closest(name, [l.name]) !== undefined;
  });
  const show = near.length ? near : named.length <= 16 ? named : [];
  if (show.length === 0) return `none of its ${named.length} line names is close (gpioinfo ${chip} lists them)`;
  const listed = show.slice(0, 16).map((l) => `"${l.name}" (line ${l.offset})`).join(", ");
  return `${near.length ? "similar names" : "its lines are"}: ${listed}${show.length > 16 ? ", …" : ""}`;
}

function inUse(chip: string, info: LineInfo): Error {
  const line = `line ${info.offset}${info.name ? ` (${info.name})` : ""} of ${chip}`;
  const who = info.consumer ? `"${info.consumer}"` : "a kernel driver (no consumer name)";
  const ours = /^jmp\[(\d+)\]$/.exec(info.consumer);
  const hint = ours
    ? `another jmp exporter (process ${ours[1]}) holds it; stop that one first`
    : "free it there first (gpioinfo shows who holds each line)";
  return new UnavailableError(`${line} is in use by ${who}: ${hint}`);
}

function refused(chip: string, info: LineInfo, spec: LineSpec, e: Error): Error {
  const code = (e as SyscallError).code ?? e.message;
  const asked = [
    spec.direction,
    spec.activeLow ? "active_low" : "",
    spec.bias !== "as_is" ? `bias ${spec.bias}` : "",
    spec.direction === "output" && spec.drive && spec.drive !== "push_pull" ? `drive ${spec.drive}` : "",
  ].filter(Boolean).join(", ");
  // ENOTSUPP (524) leaks out of some pin controllers for a bias or drive they lack.
  const unsupported = code === "EOPNOTSUPP" || code === "errno 524";
  const why = unsupported ? `: the chip does not support this (try without bias or drive)` : "";
  return new UnavailableError(`requesting line ${info.offset}${info.name ? ` (${info.name})` : ""} of ${chip} as ${asked} failed: ${code}${why}`);
}
