/**
 * The Power interface (on, off, read) and MockPower, as upstream's
 * jumpstarter_driver_power: same client path, same method names and readings.
 */
import { Driver, exported } from "@jumpstarter/driver";
import { POWER_CLIENT } from "./clients.ts";

export { POWER_CLIENT };

export interface PowerReading {
  voltage: number;
  current: number;
  /** Real power in watts, from devices that measure it (a smart plug's meter); upstream's readings lack it. */
  power?: number;
}

/** Every power driver extends this; its exported methods are the contract. */
export abstract class PowerInterface<C = Record<string, unknown>> extends Driver<C> {
  static override readonly client: string = POWER_CLIENT;
  static override readonly driverType: string = "power";
  static override readonly help: Record<string, string> = {
    on: "Power on",
    off: "Power off",
    read: "Read power measurements",
  };

  @exported
  async on(): Promise<void> {
    throw new Error("on() is not implemented by this power driver");
  }

  @exported
  async off(): Promise<void> {
    throw new Error("off() is not implemented by this power driver");
  }

  @exported
  async *read(): AsyncGenerator<PowerReading> {}
}

/** A power switch that switches nothing: logs and answers, for tests and demos. */
export class MockPower extends PowerInterface {
  static override readonly summary = "a simulated power switch (logs on/off, fixed readings)";
  state: "on" | "off" = "off";

  override async on(): Promise<void> {
    this.state = "on";
    this.log.info("power on");
  }

  override async off(): Promise<void> {
    this.state = "off";
    this.log.info("power off");
  }

  override async *read(): AsyncGenerator<PowerReading> {
    yield { voltage: 0.0, current: 0.0 };
    yield { voltage: 5.0, current: 2.0 };
  }
}
