/**
 * Console capture: during a lease, each console driver of the session (driver type
 * "serial": real serial ports and simulated consoles) is connected once, by the
 * exporter itself, as soon as the session's drivers exist. Its output is read all
 * the time, whether or not a client is attached, and handed to `onOutput` (the
 * exporter sends it to the controller, see console-push.ts). Clients' `connect`
 * calls attach to the same connection (src/driver/console-fanout.ts): several readers
 * see the same bytes, one of them types at a time.
 */
import type { ByteStream } from "../driver/byte-stream.ts";
import { type Driver, driverClassOf } from "../driver/driver.ts";
import { exportedMethods } from "../driver/markers.ts";
import type { Logger } from "../common/log.ts";
import { type AttachOptions, ConsoleFanout } from "../driver/console-fanout.ts";

/**
 * The drivers captured: each serial-type driver that has a `connect` byte stream, by
 * its dotted name. A driver reached twice (a `ref`) is captured once, under its
 * shortest name (`console` rather than `dut.console`).
 */
export function consoleDrivers(root: Driver): Map<string, Driver> {
  const byDriver = new Map<Driver, string>();
  const walk = (d: Driver, path: string, depth: number) => {
    if (depth > 32) return;
    for (const [name, child] of Object.entries(d.children)) {
      const full = path ? `${path}.${name}` : name;
      if (driverClassOf(child).driverType === "serial" && exportedMethods(child).get("connect")?.kind === "bytes") {
        const seen = byDriver.get(child);
        if (seen === undefined || full.split(".").length < seen.split(".").length) byDriver.set(child, full);
      }
      walk(child, full, depth + 1);
    }
  };
  walk(root, "", 0);
  return new Map([...byDriver].map(([d, name]) => [name, d]));
}

export interface Capture {
  /** The drivers captured, by name. */
  readonly drivers: string[];
  /** Resolves once every captured console's output has ended (its driver closed). */
  readonly done: Promise<void>;
}

/**
 * Connects each console of `root` once and from then on serves its `connect` from
 * that connection. A console that cannot be opened now (a USB serial port not yet
 * there) is left as it is, uncaptured, with a warning.
 */
export async function captureConsoles(root: Driver, onOutput: (driver: string, bytes: Uint8Array) => void, log: Logger): Promise<Capture> {
  const names: string[] = [];
  const done: Promise<void>[] = [];
  for (const [name, driver] of consoleDrivers(root)) {
    const method = exportedMethods(driver).get("connect")!.name;
    const own = driver as unknown as Record<string, (opts?: AttachOptions) => Promise<ByteStream>>;
    const open = own[method]!;
    let device: ByteStream;
    try {
      device = await open.call(driver);
    } catch (e) {
      log.warn(`console ${name} is not captured: ${(e as Error).message}`);
      continue;
    }
    const fanout = new ConsoleFanout(device, { onOutput: (bytes) => onOutput(name, bytes) });
    // An own property over the class's method: the session's dispatch looks the method up on the instance.
    // Its argument comes from the stream request (`x_jmp_take`, see session.ts).
    own[method] = async (opts?: AttachOptions) => fanout.attach(opts);
    names.push(name);
    done.push(fanout.done);
  }
  return { drivers: names, done: Promise.all(done).then(() => undefined) };
}
