/**
 * The base of a console that is not a real UART (a simulated or virtual board's):
 * it reports the serial client, so `j console expect|pipe|start-console` work on it,
 * and accepts the modem-line calls a serial port has, doing nothing with them.
 */
import { Driver, exported, InvalidArgumentError } from "@jumpstarter/driver";
import { SERIAL_CLIENT } from "./driver.ts";

function requireBoolean(value: unknown): void {
  if (typeof value !== "boolean") throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(value) ?? String(value)}`);
}

export abstract class VirtualConsole extends Driver {
  static override readonly client: string = SERIAL_CLIENT;
  static override readonly driverType: string = "serial";

  @exported
  async setDtr(value: unknown): Promise<void> {
    requireBoolean(value);
  }

  @exported
  async setRts(value: unknown): Promise<void> {
    requireBoolean(value);
  }
}
