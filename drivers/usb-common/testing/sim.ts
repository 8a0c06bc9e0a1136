/**
 * Simulated USB devices for tests: runs a command under umockdev-usb.py (see there
 * for what it simulates, how, and its limits), then lets a test read the control
 * transfers and HID reports the command sent and what the devices now do.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UmockdevSim, umockdevMissing, type SimOptions } from "../../testing/umockdev-sim.ts";

const SCRIPT = join(import.meta.dir, "umockdev-usb.py");

interface Common {
  /** `1-1.2`; `1` is the root hub of bus 1 (made up for every bus used, unless given). */
  location: string;
  vendor?: number;
  product?: number;
  manufacturer?: string;
  product_name?: string;
  serial?: string;
  /** The device node's mode, e.g. "0600" (with `runAs`, to meet permissions). */
  mode?: string;
}

export type DeviceSpec =
  | (Common & { kind: "hub"; vendor: number; product: number; ports?: number; power_switching?: "per-port" | "ganged" | "none"; usb3?: boolean; overcurrent?: number[] })
  | (Common & { kind: "ykush" })
  | (Common & { kind: "sdwire"; disk?: string; disk_size?: number; mux?: "host" | "dut" })
  | (Common & { kind: "noyito-hid"; channels?: 4 | 8 })
  | (Common & { kind: "noyito-serial"; tty?: string })
  | (Common & { kind: "device"; vendor: number; product: number; class?: number; tty?: string });

/** One line of the simulation's log. */
export interface UsbRecord {
  device: string;
  /** A control transfer, decoded: what the command sent and what the device did. */
  transfer?: "control";
  bmRequestType?: string;
  bRequest?: number;
  wValue?: string;
  wIndex?: number;
  wLength?: number;
  data?: string;
  answer?: string;
  decoded?: string;
  result?: string;
  /** A hidraw report: `write` what the command wrote (hex, report ID first), `sent` what the device sent back. */
  hidraw?: string;
  write?: string;
  sent?: string;
  /** Other usbdevfs ioctls, and opens of the usbfs node. */
  ioctl?: string;
  open?: string;
  /** A tty: `received` what the command wrote (hex), `sent` what the device answered. */
  tty?: string;
  received?: string;
}

/** Why the simulation cannot run here, or undefined when it can. */
export function simulationMissing(): string | undefined {
  const missing = umockdevMissing();
  if (missing) return missing;
  if (!Bun.spawnSync(["/sbin/ldconfig", "-p"]).stdout.toString().includes("libusb-1.0.so.0")) {
    return "libusb-1.0 is missing (apt-get install -y --no-install-recommends libusb-1.0-0)";
  }
  return undefined;
}

export class UsbSim extends UmockdevSim<UsbRecord> {
  /**
   * Starts `command` with `devices` plugged in; its stdin, stdout and stderr are pipes.
   * `runAs` ("uid:gid") runs it as another user, as an exporter's user meets permissions.
   */
  constructor(devices: DeviceSpec[], command: string[], opts: SimOptions = {}) {
    super(SCRIPT, { devices }, command, opts);
  }

  /** The control transfers logged so far (optionally: to one device), in order. */
  transfers(device?: string): UsbRecord[] {
    return this.records().filter((r) => r.transfer && (!device || r.device === device));
  }

  /** The HID reports the command wrote so far (optionally: to one device), hex, report ID first. */
  reportsWritten(device?: string): string[] {
    return this.records().filter((r) => r.write !== undefined && (!device || r.device === device)).map((r) => r.write!);
  }

  /** The bytes the command wrote to a device's tty, hex, chunk by chunk as they arrived. */
  ttyReceived(device?: string): string {
    return this.records().filter((r) => r.received !== undefined && (!device || r.device === device)).map((r) => r.received!).join("");
  }

  /**
   * Every device's state: port power, the mux, relays, the disk file (the host's view
   * of the card). After the command has ended: as it was then.
   */
  async state(): Promise<Record<string, any>> {
    if (this.proc.exitCode !== null) {
      await this.proc.exited;
      return JSON.parse(readFileSync(this.finalState, "utf8"));
    }
    return this.ask("state");
  }
}

/** UsbSim as DriverHarness starts it. */
export function usbDevices(devices: DeviceSpec[], command: string[], opts: SimOptions): UsbSim {
  return new UsbSim(devices, command, opts);
}
