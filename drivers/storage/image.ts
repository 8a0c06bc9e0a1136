/**
 * ImageStorage: an image file or a block device (an SD card reader, a USB stick,
 * a QEMU disk image) as a storage mux. `host` gives it to the exporter, `dut` to
 * the device under test; writing and reading are refused while the DUT has it.
 */
import { constants, statSync, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { type ConfigOf, config, DriverError, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { BlockStorage, type OpenDisk } from "./block-storage.ts";
import { STORAGE_MUX_FLASHER_CLIENT } from "./interface.ts";
import { sizeField } from "./units.ts";

const MiB = 2 ** 20;

const shape = {
  path: config.string({ nonEmpty: true, description: "an image file or a block device (/dev/sdX, /dev/disk/by-id/…)" }),
  size: config.optional(sizeField({
    min: 512,
    description: "image files only: the file is kept at this size (a disk of this size), and larger images are refused; unset: the file becomes exactly the image",
  })),
  create: config.withDefault(config.boolean({ description: "create the image file if it is missing" }), true),
  block_size: config.withDefault(sizeField({ min: 4096, max: 64 * MiB, description: "bytes per disk write and read" }), 4 * MiB),
  verify: config.withDefault(
    config.boolean({ description: "after each write, read the data back from the disk and compare sha256 digests" }),
    false,
  ),
};

type Mux = "off" | "host" | "dut";

export class ImageStorage extends BlockStorage<ConfigOf<typeof shape>> {
  static override readonly client = STORAGE_MUX_FLASHER_CLIENT;
  static override readonly configShape = shape;
  static override readonly summary = "an image file or block device as a storage mux (flash, dump, verify by sha256)";

  /** Who has the storage; it starts disconnected. */
  mux: Mux = "off";
  protected readonly storageName = "the storage";

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    const stats = statOrUndefined(cfg.path);
    if (stats) checkKind(cfg.path, stats, cfg.size !== undefined);
    else if (cfg.create && !statOrUndefined(dirname(cfg.path))?.isDirectory()) {
      throw new InvalidArgumentError(`path: the directory of ${cfg.path} does not exist, so the image cannot be created there`);
    }
  }

  override async host(): Promise<void> {
    this.switchTo("host");
  }

  override async dut(): Promise<void> {
    this.switchTo("dut");
  }

  override async off(): Promise<void> {
    this.switchTo("off");
  }

  private switchTo(to: Mux): void {
    if (this.busy && to !== "host") throw new DriverError(`cannot switch the storage to ${to} while ${this.busy} it`);
    this.mux = to;
    this.log.info(to === "off" ? "storage disconnected" : `storage connected to ${to}`);
  }

  /** Never while the DUT has the storage. */
  protected override refuseTransfer(what: string): void {
    if (this.mux === "dut") {
      throw new DriverError(`the storage is connected to the DUT: switch it to the host first ('j <storage> host') before ${what}`);
    }
  }

  protected override async openDisk(purpose: "write" | "read"): Promise<OpenDisk> {
    const { path, create, size } = this.config;
    const stats = statOrUndefined(path);
    if (stats) checkKind(path, stats, size !== undefined);
    else if (path.startsWith("/dev/")) {
      // Never create a regular file in /dev: an absent SD card would silently become one.
      throw new UnavailableError(`${path} is not present: is the device plugged in and switched to the host?`);
    } else if (purpose === "read" || !create) {
      throw new InvalidArgumentError(`${path} does not exist${purpose === "write" ? " (create: false)" : ""}`);
    }
    const block = stats?.isBlockDevice() ?? false;
    // O_EXCL on a block device fails if it is mounted or open elsewhere exclusively.
    const flags = purpose === "read" ? constants.O_RDONLY : constants.O_RDWR | (block ? constants.O_EXCL : constants.O_CREAT);
    let file: FileHandle;
    try {
      file = await open(path, flags, 0o644);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EBUSY") throw new DriverError(`${path} is in use (mounted, or open elsewhere): unmount it first`);
      if (code === "EACCES" || code === "EPERM") throw new DriverError(`no permission to ${purpose} ${path}: give the exporter's user access to it`);
      throw e;
    }
    return {
      name: path,
      file,
      limit: block ? undefined : size,
      settle: async (bytes) => {
        // An image file is exactly the image, or the configured disk size (sparse beyond the image).
        if (!block) await file.truncate(size ?? bytes);
        await file.sync();
      },
      close: () => file.close(),
    };
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function checkKind(path: string, stats: Stats, sized: boolean): void {
  if (stats.isBlockDevice()) {
    if (sized) throw new InvalidArgumentError(`size: ${path} is a block device, which has its own size; remove 'size'`);
    return;
  }
  if (!stats.isFile()) throw new InvalidArgumentError(`path: ${path} is neither a regular file nor a block device`);
}
