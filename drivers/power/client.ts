/** Client of the Power interface: `j power on|off|cycle|read`. */
import { defineCommand, DriverClient, InvalidArgumentError } from "@jumpstarter/driver";
import type { PowerReading } from "./driver.ts";

export class PowerClient extends DriverClient {
  /** Powers the device on. */
  async on(): Promise<void> {
    await this.call("on");
  }

  /** Powers the device off. */
  async off(): Promise<void> {
    await this.call("off");
  }

  /** Powers off, waits `wait` seconds, powers on. */
  async cycle(wait = 2): Promise<void> {
    if (!(wait >= 0)) throw new InvalidArgumentError(`wait must be zero or more seconds, got ${wait}`);
    await this.off();
    await Bun.sleep(wait * 1000);
    await this.on();
  }

  /** Power readings, as the driver streams them. */
  async *read(): AsyncGenerator<PowerReading> {
    for await (const r of this.streamingCall<PowerReading>("read")) {
      if (typeof r?.voltage !== "number" || typeof r?.current !== "number") {
        throw new Error(`the driver sent a malformed power reading: ${JSON.stringify(r)}`);
      }
      yield r;
    }
  }

  /**
   * `count` readings (0: without end), reading again after `interval` seconds each
   * time the driver's stream ends; without a count, one read: what the driver sends.
   */
  private async *readings(count: number | undefined, interval: number): AsyncGenerator<PowerReading> {
    let given = 0;
    for (let round = 0; ; round++) {
      if (round > 0 && interval > 0) await Bun.sleep(interval * 1000);
      let sent = 0;
      for await (const r of this.read()) {
        yield r;
        sent++;
        if (count && ++given >= count) return;
      }
      if (count === undefined || sent === 0) return;
    }
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "Generic power" },
      subCommands: {
        on: defineCommand({ meta: { description: this.help("on", "Power on") }, run: () => this.on() }),
        off: defineCommand({ meta: { description: this.help("off", "Power off") }, run: () => this.off() }),
        cycle: defineCommand({
          meta: { description: this.help("cycle", "Power cycle") },
          args: { wait: { type: "string", alias: "w", default: "2", description: "seconds between off and on" } },
          run: async ({ args }) => {
            const wait = Number(args.wait);
            if (!Number.isFinite(wait) || wait < 0) throw new InvalidArgumentError(`--wait must be a number of seconds, got '${args.wait}'`);
            console.log(`Power cycling with ${wait} seconds wait time...`);
            await this.cycle(wait);
          },
        }),
        read: defineCommand({
          meta: { description: this.help("read", "Read power measurements") },
          args: {
            count: { type: "string", alias: "n", description: "print this many readings, reading again as needed (0 = until interrupted; default: one read, as many readings as the driver sends)" },
            interval: { type: "string", alias: "i", default: "1", description: "seconds to wait before reading again" },
          },
          run: async ({ args }) => {
            const count = args.count === undefined ? undefined : Number(args.count);
            const interval = Number(args.interval);
            if (count !== undefined && (!Number.isInteger(count) || count < 0)) throw new InvalidArgumentError(`--count must be a whole number, got '${args.count}'`);
            if (!Number.isFinite(interval) || interval < 0) throw new InvalidArgumentError(`--interval must be seconds, got '${args.interval}'`);
            for await (const r of this.readings(count, interval)) {
              const power = typeof r.power === "number" ? `  power=${r.power} W` : "";
              console.log(`voltage=${r.voltage} V  current=${r.current} A  apparent_power=${r.voltage * r.current} VA${power}`);
            }
          },
        }),
      },
    });
  }
}
