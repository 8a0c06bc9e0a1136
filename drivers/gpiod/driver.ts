/**
 * GPIO lines through the Linux GPIO character device (v2 uAPI, not sysfs), as
 * upstream's jumpstarter_driver_gpiod: the same type paths, client paths, config
 * keys and wire methods (on, off, read_pin; wait_for_active, wait_for_inactive,
 * wait_for_edge), so upstream's Python clients drive these drivers unchanged.
 * Beyond upstream: `line` may be a name, and the line is checked at start with
 * messages that say what to do.
 */
import {
  callSignal, config, Driver, exported, InvalidArgumentError, NotImplementedDriverError, type ConfigOf,
} from "@jumpstarter/driver";
import { POWER_CLIENT, PowerInterface, type PowerReading } from "../power/driver.ts";
import { BIASES, DRIVES, GpioLine, type Drive, type LineSpec } from "./line.ts";
import { EVENT_FALLING_EDGE, EVENT_RISING_EDGE } from "./uapi.ts";
import { DIGITAL_OUTPUT_CLIENT, DIGITAL_INPUT_CLIENT } from "./clients.ts";

export { DIGITAL_OUTPUT_CLIENT, DIGITAL_INPUT_CLIENT };

const lineShape = {
  device: config.withDefault(
    config.either(config.number({ integer: true, min: 0 }), config.string({ nonEmpty: true }), {
      description: "the GPIO chip: a path such as /dev/gpiochip0, or its number",
    }),
    "/dev/gpiochip0" as string | number,
  ),
  line: config.either(config.number({ integer: true, min: 0 }), config.string({ nonEmpty: true }), {
    description: "the line: its number on the chip, or its name (as gpioinfo shows it)",
  }),
  active_low: config.withDefault(config.boolean({ description: "the line is active when low" }), false),
  bias: config.optional(config.oneOf(BIASES, { description: "pull resistor (default: as_is, left as it is)" })),
  drive: config.optional(config.oneOf(DRIVES, { description: "output drive (default: push_pull)" })),
};

const INITIAL_VALUES = ["active", "inactive", "on", "off"] as const;
const outputShape = {
  ...lineShape,
  initial_value: config.withDefault(
    config.either(config.oneOf(INITIAL_VALUES), config.boolean(), { description: "the output's value from the start of each session" }),
    "inactive" as (typeof INITIAL_VALUES)[number] | boolean,
  ),
};
const powerSwitchShape = {
  ...outputShape,
  mode: config.optional(config.oneOf(DRIVES, { description: "upstream's name for drive on a PowerSwitch" })),
};

type LineConfig = ConfigOf<typeof lineShape>;
type OutputConfig = ConfigOf<typeof outputShape>;

function outputSpec(cfg: OutputConfig, drive: Drive | undefined): LineSpec {
  const initial = cfg.initial_value;
  return {
    device: cfg.device,
    line: cfg.line,
    activeLow: cfg.active_low,
    bias: cfg.bias ?? "as_is",
    direction: "output",
    drive,
    initialValue: initial === true || initial === "active" || initial === "on" ? 1 : 0,
  };
}

function pinState(value: 0 | 1): string {
  return value ? "active" : "inactive";
}

/** Sets an output and logs what it then reads (an open-drain line may read otherwise). */
function switchLine(d: Driver, line: GpioLine, value: 0 | 1, what: string): void {
  line.set(value);
  d.log.info(`${what}: ${line.description} set ${pinState(value)}, reads ${pinState(line.get())}`);
}

/** One output line: on (active), off (inactive), read_pin. */
export class DigitalOutput extends Driver<OutputConfig> {
  static override readonly client = DIGITAL_OUTPUT_CLIENT;
  static override readonly configShape = outputShape;
  static override readonly driverType = "gpio";
  static override readonly summary = "a GPIO output line (LED, relay, reset or boot-mode pin) through /dev/gpiochipN";
  static override readonly help = {
    on: "Set the line active",
    off: "Set the line inactive",
    read_pin: "Read the line: 1 active, 0 inactive",
  };

  private readonly line: GpioLine;

  constructor(cfg: OutputConfig) {
    super(cfg);
    this.line = GpioLine.request(outputSpec(cfg, cfg.drive));
  }

  @exported
  async on(): Promise<void> {
    switchLine(this, this.line, 1, "on");
  }

  @exported
  async off(): Promise<void> {
    switchLine(this, this.line, 0, "off");
  }

  /** 1 or 0, as upstream's PinState value. */
  @exported
  async readPin(): Promise<0 | 1> {
    return this.line.get();
  }

  override async close(): Promise<void> {
    await this.line.close();
  }
}

function timeoutArg(method: string, timeout: unknown): number | undefined {
  if (timeout === undefined || timeout === null) return undefined;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new InvalidArgumentError(`${method}: timeout must be a number of seconds (0 or more) or null, got ${JSON.stringify(timeout)}`);
  }
  return timeout;
}

const EDGES = { rising: EVENT_RISING_EDGE, falling: EVENT_FALLING_EDGE } as const;

/** One input line: read_pin and waits for a level or an edge (both edges are detected from the start). */
export class DigitalInput extends Driver<LineConfig> {
  static override readonly client = DIGITAL_INPUT_CLIENT;
  static override readonly configShape = lineShape;
  static override readonly driverType = "gpio";
  static override readonly summary = "a GPIO input line (button, status pin) with edge waits, through /dev/gpiochipN";
  static override readonly help = {
    read_pin: "Read the line: 1 active, 0 inactive",
    wait_for_active: "Wait until the line is active",
    wait_for_inactive: "Wait until the line is inactive",
    wait_for_edge: "Wait for a rising or falling edge",
  };

  private readonly line: GpioLine;

  constructor(cfg: LineConfig) {
    super(cfg);
    if (cfg.drive && cfg.drive !== "push_pull") {
      throw new InvalidArgumentError(`drive: ${cfg.drive} applies to outputs; an input has no drive (leave it out)`);
    }
    this.line = GpioLine.request({
      device: cfg.device,
      line: cfg.line,
      activeLow: cfg.active_low,
      bias: cfg.bias ?? "as_is",
      direction: "input",
    });
  }

  @exported
  async readPin(): Promise<0 | 1> {
    return this.line.get();
  }

  /** Returns at once if the line is active, else at its next rising edge. */
  @exported
  async waitForActive(timeout?: number | null): Promise<void> {
    await this.waitForLevel(1, timeoutArg("wait_for_active", timeout));
  }

  /** Returns at once if the line is inactive, else at its next falling edge. */
  @exported
  async waitForInactive(timeout?: number | null): Promise<void> {
    await this.waitForLevel(0, timeoutArg("wait_for_inactive", timeout));
  }

  /** Waits for the next edge of that kind (in terms of active: rising is inactive to active). */
  @exported
  async waitForEdge(edgeType: string, timeout?: number | null): Promise<void> {
    if (edgeType !== "rising" && edgeType !== "falling") {
      throw new InvalidArgumentError(`wait_for_edge: edge_type must be "rising" or "falling", got ${JSON.stringify(edgeType)}`);
    }
    const seconds = timeoutArg("wait_for_edge", timeout);
    const watch = this.line.watch();
    try {
      this.log.info(`waiting for a ${edgeType} edge on ${this.line.description} (now ${pinState(this.line.get())})`);
      await watch.next((e) => e.id === EDGES[edgeType], seconds, `${edgeType} edge`, callSignal());
    } finally {
      watch.close();
    }
  }

  private async waitForLevel(level: 0 | 1, seconds: number | undefined): Promise<void> {
    // Watching before reading the level: a change between the two is an event, never missed.
    const watch = this.line.watch();
    try {
      if (this.line.get() === level) return;
      const edge = level ? "rising" : "falling";
      this.log.info(`waiting for ${this.line.description} to become ${pinState(level)}`);
      await watch.next((e) => e.id === EDGES[edge], seconds, `${edge} edge`, callSignal());
    } finally {
      watch.close();
    }
  }

  override async close(): Promise<void> {
    await this.line.close();
  }
}

/** A relay (or any power switch) on an output line: the Power interface, as upstream's PowerSwitch. */
export class PowerSwitch extends PowerInterface<ConfigOf<typeof powerSwitchShape>> {
  static override readonly client = POWER_CLIENT;
  static override readonly configShape = powerSwitchShape;
  static override readonly summary = "a power switch (relay) on a GPIO output line, through /dev/gpiochipN";
  static override readonly help = {
    ...PowerInterface.help,
    read_pin: "Read the line: 1 active (power on), 0 inactive",
  };

  private readonly line: GpioLine;

  constructor(cfg: ConfigOf<typeof powerSwitchShape>) {
    super(cfg);
    if (cfg.mode && cfg.drive && cfg.mode !== cfg.drive) {
      throw new InvalidArgumentError(`mode (${cfg.mode}) and drive (${cfg.drive}) disagree; give one of them`);
    }
    this.line = GpioLine.request(outputSpec(cfg, cfg.drive ?? cfg.mode));
  }

  override async on(): Promise<void> {
    switchLine(this, this.line, 1, "power on");
  }

  override async off(): Promise<void> {
    switchLine(this, this.line, 0, "power off");
  }

  override async *read(): AsyncGenerator<PowerReading> {
    throw new NotImplementedDriverError(`${this.line.description} switches power; it cannot measure voltage or current`);
  }

  @exported
  async readPin(): Promise<0 | 1> {
    return this.line.get();
  }

  override async close(): Promise<void> {
    await this.line.close();
  }
}
