/**
 * Simulated GPIO chips for tests: runs a command under umockdev-gpiochip.py (see
 * there for how and its limits), then lets a test read the ioctls the command
 * made, drive input lines from outside and read what the lines do.
 */
import { join } from "node:path";
import { UmockdevSim, umockdevMissing, type SimOptions } from "../../testing/umockdev-sim.ts";

const SCRIPT = join(import.meta.dir, "umockdev-gpiochip.py");

export interface ChipSpec {
  name: string;
  label?: string;
  lines: number;
  names?: Record<number, string>;
  /** Lines someone else holds: offset → consumer. */
  used?: Record<number, string>;
  /** Levels driven from outside: offset → 0 or 1. */
  pulls?: Record<number, 0 | 1>;
}

/** One line of the simulation's log: an ioctl (decoded), an edge event sent, a release, a read. */
export interface SimRecord {
  chip: string;
  ioctl?: string;
  result?: number | string;
  offset?: number;
  offsets?: number[];
  consumer?: string;
  num_lines?: number;
  event_buffer_size?: number;
  config?: { flags: string[]; attrs: { id: string; value: string; mask: string }[] } | "invalid";
  mask?: string;
  bits?: string;
  physical?: Record<string, number>;
  event?: string;
  closed?: boolean;
  released?: number[];
  read?: number;
}

export interface LineState {
  requested: boolean;
  consumer: string;
  flags: string[];
  physical: 0 | 1;
  logical: 0 | 1;
  events?: string[];
}

/** Why the simulation cannot run here, or undefined when it can. */
export const simulationMissing = umockdevMissing;

export class GpioSim extends UmockdevSim<SimRecord> {
  /** Starts `command` under simulated `chips`; its stdin, stdout and stderr are pipes. */
  constructor(chips: ChipSpec[], command: string[], env: Record<string, string | undefined> = process.env, opts: Omit<SimOptions, "env"> = {}) {
    super(SCRIPT, { chips }, command, { ...opts, env });
  }

  /** The ioctls logged so far (optionally: of one request name), in order. */
  ioctls(name?: string): SimRecord[] {
    return this.records().filter((r) => r.ioctl && (!name || r.ioctl === name));
  }

  /** Drives a line from outside (as a button or a board's status pin would); edge events follow. */
  pull(chip: string, offset: number, level: 0 | 1 | null): Promise<LineState> {
    return this.ask(`pull ${chip} ${offset} ${level ?? "none"}`);
  }

  /** What a line is doing now. */
  line(chip: string, offset: number): Promise<LineState> {
    return this.ask(`line ${chip} ${offset}`);
  }
}

/** GpioSim as DriverHarness starts it. */
export function gpioChips(chips: ChipSpec[], command: string[], opts: SimOptions): GpioSim {
  return new GpioSim(chips, command, opts.env, opts);
}
