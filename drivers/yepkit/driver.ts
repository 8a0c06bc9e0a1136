/**
 * Yepkit YKUSH (04d8:f2f7), a USB hub that switches the power of its three
 * downstream ports on command, as upstream's jumpstarter_driver_yepkit.driver.Ykush:
 * the same config keys (serial, port, default), the same 64-byte HID reports
 * (0x11-0x13 / 0x1a up, 0x01-0x03 / 0x0a down; each answered by a 64-byte report),
 * and the power client label. The reports go through the board's hidraw node.
 */
import { config, NotImplementedDriverError, type ConfigOf } from "@jumpstarter/driver";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { findOne, listed } from "../usb-common/find.ts";
import { Hidraw, hidrawNodeOf, withHidraw } from "../usb-common/hidraw.ts";
import type { UsbDevice } from "../usb-common/sysfs.ts";

export const YKUSH = { vendorId: 0x04d8, productId: 0xf2f7 };
const REPORT_SIZE = 64;
/** Upstream waits 2 s for the board's answer. */
const ANSWER_TIMEOUT_MS = 2000;

const PORTS = ["1", "2", "3", "all"] as const;
type Port = (typeof PORTS)[number];
const UP: Record<Port, number> = { 1: 0x11, 2: 0x12, 3: 0x13, all: 0x1a };
const DOWN: Record<Port, number> = { 1: 0x01, 2: 0x02, 3: 0x03, all: 0x0a };

const shape = {
  serial: config.optional(config.string({ nonEmpty: true, description: "the board's serial number (YK…); unset: the first YKUSH found" })),
  port: config.withDefault(
    config.either(config.number({ integer: true, min: 1, max: 3 }), config.oneOf([...PORTS, "a"]), {
      description: 'the downstream port: 1, 2, 3, or "all" ("a")',
    }),
    "all" as number | (typeof PORTS)[number] | "a",
  ),
  default: config.withDefault(
    config.oneOf(["on", "off", "keep"], { description: "the port's power when each session starts (keep: leave it)" }),
    "off",
  ),
};

type Config = ConfigOf<typeof shape>;

function portOf(value: Config["port"]): Port {
  if (value === "a") return "all";
  return String(value) as Port;
}

export class Ykush extends PowerInterface<Config> {
  static override readonly configShape = shape;
  static override readonly summary = "a Yepkit YKUSH hub's port power (HID reports, as upstream's jumpstarter_driver_yepkit)";
  static override readonly help = {
    on: "Power the YKUSH port on",
    off: "Power the YKUSH port off",
    read: "Not implemented: a YKUSH measures nothing",
  };

  private readonly port: Port;
  private readonly serial: string | undefined;
  /** `YKUSH YK25838 port 1`, for messages. */
  private readonly name: string;

  constructor(cfg: Config) {
    super(cfg);
    this.port = portOf(cfg.port);
    const { device, others } = findOne("YKUSH", [YKUSH], cfg.serial, "first");
    if (cfg.serial === undefined) {
      this.log.warn(`no serial given for the YKUSH: using the first one found, ${device.serial ?? "(no serial)"} at ${device.location}${others.length ? ` (also found: ${listed(others)})` : ""}`);
    }
    this.serial = device.serial ?? cfg.serial;
    this.name = `YKUSH ${device.serial ?? device.location} port ${this.port}`;
    Hidraw.check(hidrawNodeOf(device, "the YKUSH"), device, "the YKUSH");
    // Upstream's reset(): the configured power state when the session starts (a driver is built per session).
    if (cfg.default !== "keep") this.command(cfg.default === "on" ? UP[this.port] : DOWN[this.port], cfg.default);
  }

  override async on(): Promise<void> {
    this.command(UP[this.port], "on");
  }

  override async off(): Promise<void> {
    this.command(DOWN[this.port], "off");
  }

  override async *read(): AsyncGenerator<PowerReading> {
    throw new NotImplementedDriverError(`${this.name}: a YKUSH measures neither voltage nor current, so read is not implemented (as upstream)`);
  }

  private command(cmd: number, what: "on" | "off"): void {
    const device = this.find();
    const report = new Uint8Array(REPORT_SIZE);
    report[0] = cmd;
    withHidraw(hidrawNodeOf(device, "the YKUSH"), device, "the YKUSH", (h) => {
      h.write(0, report, `the power-${what} command`);
      // The board answers every command; upstream reads the answer too, and so learns it was taken.
      h.answer(ANSWER_TIMEOUT_MS, `the power-${what} command`);
    });
    this.log.info(`${this.name} ${what}`);
  }

  /** The board, found again each time: it may have been replugged since. */
  private find(): UsbDevice {
    return findOne("YKUSH", [YKUSH], this.serial, "first").device;
  }
}
