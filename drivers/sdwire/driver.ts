/**
 * SDWire: an SD card multiplexer that gives its card to the exporter host (through
 * its built-in card reader) or to the DUT, as upstream's
 * jumpstarter_driver_sdwire.driver.SDWire: the same config keys, the same FTDI
 * CBUS bitbang control transfers to switch (SET_BITMODE 0x20F1 host, 0x20F0 DUT)
 * and the storage client label, so `j storage flash|dump|host|dut` and upstream's
 * Python client drive it.
 *
 * Its parts on USB: an internal hub with the card reader and the FT200X behind it.
 * The reader's disk is found next to the FT200X in sysfs (the hub's other child),
 * so several SDWires on one exporter never mix up their cards. Flashing, dumping and
 * verifying are drivers/storage's (BlockStorage, as ImageStorage's), on that disk.
 */
import { promisify } from "node:util";
import fs from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import {
  config, DeadlineExceededError, DriverError, InvalidArgumentError, UnavailableError, type ConfigOf,
} from "@jumpstarter/driver";
import { BlockStorage, type OpenDisk } from "../storage/block-storage.ts";
import { STORAGE_MUX_FLASHER_CLIENT } from "../storage/interface.ts";
import { sizeField } from "../storage/units.ts";
import { devicesOfKind, listed, type DeviceKind } from "../usb-common/find.ts";
import { closeFd, O, openPath, sizeOfFd, SyscallError } from "../native/libc.ts";
import { REQUEST, requireLibusb, withDevice } from "../usb-common/libusb.ts";
import { blockDevicesBelow, describeDevice, listUsbDevices, usbDeviceAt, type UsbDevice } from "../usb-common/sysfs.ts";

/** Programmed by `sd-mux-ctrl --init`: Samsung's ids and product "sd-wire". */
export const PROGRAMMED: DeviceKind = { vendorId: 0x04e8, productId: 0x6001, product: "sd-wire" };
/** A factory-default FT200X: only taken by serial, since any FT200X looks alike. */
export const UNPROGRAMMED: DeviceKind = { vendorId: 0x0403, productId: 0x6015 };

/** FTDI vendor requests: SET_BITMODE (wValue: mode << 8 | pins) and READ_PINS. */
const SET_BITMODE = 0x0b;
const READ_PINS = 0x0c;
const BITMODE_CBUS = 0x20;
/** CBUS0..3 as outputs (high nibble), CBUS0 high: the card goes to the host; low: to the DUT. */
const PINS = { host: 0xf1, dut: 0xf0 } as const;

const MiB = 2 ** 20;
const STORAGE_POLL_MS = 250;

const shape = {
  serial: config.optional(config.string({ nonEmpty: true, description: "the SDWire's serial number; required for an unprogrammed one (0403:6015)" })),
  storage_device: config.optional(config.string({ nonEmpty: true, description: "the card reader's disk (/dev/sdX, /dev/disk/by-id/…); unset: found next to the SDWire on USB" })),
  storage_timeout: config.withDefault(config.number({ min: 0, description: "seconds to wait for the card to appear on the host" }), 10),
  storage_leeway: config.withDefault(config.number({ min: 0, description: "seconds to wait after a write is synced, before anything else" }), 6),
  storage_fsync_timeout: config.withDefault(config.number({ min: 0, description: "seconds a write's final sync may take" }), 900),
  block_size: config.withDefault(sizeField({ min: 4096, max: 64 * MiB, description: "bytes per disk write and read" }), 4 * MiB),
  verify: config.withDefault(config.boolean({ description: "after each write, read the card back and compare sha256 digests" }), false),
};

type Config = ConfigOf<typeof shape>;

const fsync = promisify(fs.fsync);

/**
 * The part of a FileHandle that drivers/storage's block transfers use, over a file
 * descriptor opened through libc (see native/libc.ts: so the tests' umockdev
 * sees the disk as it sees sysfs). Its writes and reads run off the event loop.
 */
class DiskFile {
  constructor(readonly fd: number) {}

  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }> {
    return new Promise((resolve, reject) => {
      fs.writev(this.fd, buffers, position, (e, bytesWritten) => (e ? reject(e) : resolve({ bytesWritten })));
    });
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return new Promise((resolve, reject) => {
      fs.read(this.fd, buffer, offset, length, position, (e, bytesRead) => (e ? reject(e) : resolve({ bytesRead })));
    });
  }

  /** What storage/io.ts takes. */
  get handle(): FileHandle {
    return this as unknown as FileHandle;
  }
}

export class SDWire extends BlockStorage<Config> {
  static override readonly client = STORAGE_MUX_FLASHER_CLIENT;
  static override readonly configShape = shape;
  static override readonly summary = "an SDWire SD card mux: FTDI CBUS switching, its reader's disk found by USB topology, flash and dump";

  /** The FT200X, as found at start (found again for every switch: it may re-enumerate). */
  private ftdi: UsbDevice;
  protected readonly storageName = "the SDWire";

  constructor(cfg: Config) {
    super(cfg);
    requireLibusb();
    this.ftdi = this.find();
    const disk = cfg.storage_device ?? this.discoverDisk(this.ftdi);
    const mux = withDevice(this.ftdi, this.label, (h) => {
      const pins = h.control({ requestType: REQUEST.IN | REQUEST.VENDOR | REQUEST.DEVICE, request: READ_PINS, value: 0, index: 0 }, 1, "reading the mux (READ_PINS)");
      return (pins[0] ?? 0) & 0x01 ? "host" : "dut";
    });
    this.log.info(`${this.label} (${describeDevice(this.ftdi)}), card reader disk ${disk}: the card is on the ${mux === "host" ? "host" : "DUT"} side`);
  }

  private get label(): string {
    return `SDWire ${this.ftdi?.serial ?? this.config.serial ?? ""}`.trim();
  }

  override async host(): Promise<void> {
    this.select("host");
  }

  override async dut(): Promise<void> {
    if (this.busy) throw new DriverError(`cannot give the card to the DUT while ${this.busy} it`);
    this.select("dut");
  }

  /** As upstream: the card goes back to the host (the SDWire has no "neither"). */
  override async off(): Promise<void> {
    await this.host();
  }

  /** The card, switched to the host and opened once it shows there. */
  protected override async openDisk(purpose: "write" | "read"): Promise<OpenDisk> {
    this.select("host");
    const card = await this.waitForCard(purpose);
    return {
      name: card.node,
      file: new DiskFile(card.fd).handle,
      limit: card.size,
      settle: () => this.sync(card),
      close: async () => closeFd(card.fd),
    };
  }

  /** As upstream: give the card a moment after the sync before it may be switched to the DUT. */
  protected override async afterWrite(): Promise<void> {
    if (this.config.storage_leeway > 0) await Bun.sleep(this.config.storage_leeway * 1000);
  }

  /** fsync, retried while the card reports EIO (a busy reader), for at most storage_fsync_timeout. */
  private async sync(target: { fd: number; node: string }): Promise<void> {
    const deadline = performance.now() + this.config.storage_fsync_timeout * 1000;
    this.log.info(`syncing ${target.node}`);
    for (;;) {
      try {
        await fsync(target.fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EIO" || performance.now() > deadline) {
          throw new UnavailableError(`syncing ${target.node} failed: ${(e as Error).message}`);
        }
        await Bun.sleep(1000);
      }
    }
  }

  /** Flips the mux; the FT200X is found again first (a replug gives it a new address). */
  private select(to: "host" | "dut"): void {
    this.ftdi = this.find();
    const value = (BITMODE_CBUS << 8) | PINS[to];
    withDevice(this.ftdi, this.label, (h) => {
      h.control({ requestType: REQUEST.OUT | REQUEST.VENDOR | REQUEST.DEVICE, request: SET_BITMODE, value, index: 0 }, new Uint8Array(0), `switching the card to the ${to === "host" ? "host" : "DUT"} (SET_BITMODE)`);
    });
    this.log.info(`${this.label}: card connected to the ${to === "host" ? "host" : "DUT"}`);
  }

  /**
   * Waits (up to storage_timeout) until the card shows on the host with a size, and
   * opens it: exclusively for a write, so a mounted card is refused, not corrupted.
   */
  private async waitForCard(purpose: "write" | "read"): Promise<{ fd: number; node: string; size: number }> {
    const deadline = performance.now() + this.config.storage_timeout * 1000;
    let why = "";
    for (;;) {
      const node = this.config.storage_device ?? this.discoverDisk(this.ftdi, false);
      if (node) {
        try {
          const fd = openPath(node, purpose === "write" ? O.RDWR | O.EXCL : O.RDONLY);
          const size = sizeOfFd(fd, `finding the size of ${node}`);
          if (size > 0) return { fd, node, size };
          closeFd(fd);
          why = `${node} has no medium (size 0): is a card in the SDWire?`;
        } catch (e) {
          const code = (e as SyscallError).code;
          if (code === "EBUSY") throw new DriverError(`${node} is in use (mounted, or open elsewhere): unmount it first`);
          if (code === "EACCES" || code === "EPERM") {
            throw new DriverError(`${node}: permission denied (add the exporter's user to group disk, or a udev rule for the card reader)`);
          }
          if (code !== "ENOMEDIUM" && code !== "ENOENT" && code !== "EIO" && code !== "ENXIO") throw new UnavailableError((e as Error).message);
          why = `${node}: ${(e as Error).message.replace(/^open [^:]*: /, "")}`;
        }
      } else {
        why = `no card reader disk next to ${this.label}`;
      }
      if (performance.now() >= deadline) {
        throw new DeadlineExceededError(`the SD card did not appear on the host within ${this.config.storage_timeout} s (${why})`);
      }
      await Bun.sleep(STORAGE_POLL_MS);
    }
  }

  /** The FT200X by ids (and serial); throws naming what is there instead. */
  private find(): UsbDevice {
    const { serial } = this.config;
    const all = listUsbDevices();
    const programmed = devicesOfKind([PROGRAMMED], serial, all);
    // An unprogrammed FT200X only by its serial: any FT200X looks alike.
    const candidates = serial === undefined ? programmed : [...programmed, ...devicesOfKind([UNPROGRAMMED], serial, all)];
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length > 1) {
      throw new UnavailableError(
        serial === undefined ? `several SDWires found: ${listed(candidates)}; set serial to choose one` : `several SDWires have serial ${serial}: ${listed(candidates)}`,
      );
    }
    const seen = devicesOfKind([PROGRAMMED], undefined, all);
    const unprogrammed = devicesOfKind([UNPROGRAMMED], undefined, all);
    const found = [
      seen.length ? `SDWires: ${listed(seen)}` : "",
      unprogrammed.length ? `unprogrammed FT200X (0403:6015): ${listed(unprogrammed)}` : "",
    ].filter(Boolean).join("; ");
    throw new UnavailableError(
      `no SDWire${serial === undefined ? "" : ` with serial ${serial}`} found (04e8:6001 "sd-wire"${serial === undefined ? "; an unprogrammed one, 0403:6015, is only taken by its serial" : ", or an unprogrammed 0403:6015"})${found ? `; found ${found}` : ""}`,
    );
  }

  /**
   * The card reader's disk: a block device below the SDWire's internal hub (the
   * FT200X's parent), and not below the FT200X itself. Throws at start (`strict`);
   * later, undefined while it is not there (re-enumerating after a switch).
   */
  private discoverDisk(ftdi: UsbDevice, strict = true): string | undefined {
    const hubPath = posix.dirname(ftdi.sysPath);
    const hub = usbDeviceAt(hubPath);
    const disks = hub ? blockDevicesBelow(hubPath).filter((d) => !d.sysPath.startsWith(`${ftdi.sysPath}/`)) : [];
    if (disks.length === 1) return disks[0]!.node;
    if (!strict) return undefined;
    if (!hub) {
      throw new UnavailableError(`${this.label} at ${ftdi.location} is not behind a hub, so it is not an SDWire's FT200X (or set storage_device)`);
    }
    if (disks.length === 0) {
      throw new UnavailableError(`no card reader disk next to ${this.label} (under its hub ${hub.location}): is the reader's kernel driver (usb-storage) loaded? Or set storage_device`);
    }
    throw new InvalidArgumentError(`several disks next to ${this.label}: ${disks.map((d) => d.node).join(", ")}; set storage_device`);
  }
}
