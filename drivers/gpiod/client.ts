/**
 * Clients of the GPIO drivers, as upstream's jumpstarter_driver_gpiod.client:
 * `j <name> on|off|read|cycle` for an output, `j <name> read|wait-for-active|
 * wait-for-inactive|wait-for-edge` for an input. They speak only upstream's wire
 * methods, so they drive upstream's Python exporters too. (A PowerSwitch reports
 * the power client, as upstream's does.)
 */
import { defineCommand, DriverClient, InvalidArgumentError } from "@jumpstarter/driver";

/** What upstream's PinState prints. */
export type PinState = "active" | "inactive";

function pinState(value: unknown): PinState {
  if (value !== 0 && value !== 1) throw new Error(`the driver sent a malformed pin state: ${JSON.stringify(value)}`);
  return value ? "active" : "inactive";
}

function seconds(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a number of seconds, got '${text}'`);
  return n;
}

export class DigitalOutputClient extends DriverClient {
  /** Sets the line active. */
  async on(): Promise<void> {
    await this.call("on");
  }

  /** Sets the line inactive. */
  async off(): Promise<void> {
    await this.call("off");
  }

  /** Sets the line active (true) or inactive (false). */
  async write(active: boolean): Promise<void> {
    await (active ? this.on() : this.off());
  }

  /** What the line reads now. */
  async read(): Promise<PinState> {
    return pinState(await this.call("read_pin"));
  }

  /** Inactive, `wait` seconds, active: upstream's output client is a power client and has this too. */
  async cycle(wait = 2): Promise<void> {
    if (!(wait >= 0)) throw new InvalidArgumentError(`wait must be zero or more seconds, got ${wait}`);
    await this.off();
    await Bun.sleep(wait * 1000);
    await this.on();
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "GPIO output" },
      subCommands: {
        on: defineCommand({ meta: { description: this.help("on", "Set the line active") }, run: () => this.on() }),
        off: defineCommand({ meta: { description: this.help("off", "Set the line inactive") }, run: () => this.off() }),
        read: defineCommand({
          meta: { description: this.help("read_pin", "Read the line (active or inactive)") },
          run: async () => console.log(await this.read()),
        }),
        cycle: defineCommand({
          meta: { description: this.help("cycle", "Set inactive, wait, set active") },
          args: { wait: { type: "string", alias: "w", default: "2", description: "seconds between off and on" } },
          run: async ({ args }) => {
            const wait = seconds("--wait", args.wait);
            console.log(`Power cycling with ${wait} seconds wait time...`);
            await this.cycle(wait);
          },
        }),
      },
    });
  }
}

export class DigitalInputClient extends DriverClient {
  /** What the line reads now. */
  async read(): Promise<PinState> {
    return pinState(await this.call("read_pin"));
  }

  /** Returns when the line is active (at once if it is); `timeout` in seconds, none to wait for good. */
  async waitForActive(timeout?: number): Promise<void> {
    await this.call("wait_for_active", timeout ?? null);
  }

  /** Returns when the line is inactive (at once if it is). */
  async waitForInactive(timeout?: number): Promise<void> {
    await this.call("wait_for_inactive", timeout ?? null);
  }

  /** Returns at the line's next rising (inactive to active) or falling edge. */
  async waitForEdge(edge: "rising" | "falling", timeout?: number): Promise<void> {
    await this.call("wait_for_edge", edge, timeout ?? null);
  }

  override cli() {
    // Upstream's default: an hour.
    const timeoutArg = { type: "string", alias: "t", default: "3600", description: "seconds to wait at most" } as const;
    return defineCommand({
      meta: { description: this.description ?? "GPIO input" },
      subCommands: {
        read: defineCommand({
          meta: { description: this.help("read_pin", "Read the line (active or inactive)") },
          run: async () => console.log(await this.read()),
        }),
        "wait-for-edge": defineCommand({
          meta: { description: this.help("wait_for_edge", "Wait for a rising or falling edge") },
          args: {
            edge: { type: "positional", required: true, description: "rising or falling" },
            timeout: timeoutArg,
          },
          run: async ({ args }) => {
            if (args.edge !== "rising" && args.edge !== "falling") throw new InvalidArgumentError(`the edge must be rising or falling, got '${args.edge}'`);
            await this.waitForEdge(args.edge, seconds("--timeout", args.timeout));
          },
        }),
        "wait-for-active": defineCommand({
          meta: { description: this.help("wait_for_active", "Wait until the line is active") },
          args: { timeout: timeoutArg },
          run: async ({ args }) => this.waitForActive(seconds("--timeout", args.timeout)),
        }),
        "wait-for-inactive": defineCommand({
          meta: { description: this.help("wait_for_inactive", "Wait until the line is inactive") },
          args: { timeout: timeoutArg },
          run: async ({ args }) => this.waitForInactive(seconds("--timeout", args.timeout)),
        }),
      },
    });
  }
}
