/**
 * ImageStorage: an image file or a block device (an SD card reader, a USB stick,
 * a QEMU disk image) as a storage mux. `host` gives it to the exporter, `dut` to
 * the device under test; writing and reading are refused while the DUT has it.
 */
import { constants, statSync, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { type ConfigOf, config, DriverError, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { dropCache } from "./cache.ts";
import { STORAGE_MUX_FLASHER_CLIENT, StorageMuxFlasherInterface, type WriteResult } from "./interface.ts";
import { hashPrefix, readBlocks, writeBlocks } from "./io.ts";
import { formatTransfer, sizeField } from "./units.ts";
import { unpack } from "./unpack.ts";

const MiB = 2 ** 20;
const PROGRESS_LOG_MS = 10_000;

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
type Target = { file: FileHandle; kind: "file" | "block" };

export class ImageStorage extends StorageMuxFlasherInterface<ConfigOf<typeof shape>> {
  static override readonly client = STORAGE_MUX_FLASHER_CLIENT;
  static override readonly configShape = shape;
  static override readonly summary = "an image file or block device as a storage mux (flash, dump, verify by sha256)";

  /** Who has the storage; it starts disconnected. */
  mux: Mux = "off";
  private busy?: string;

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

  override async write(src: unknown): Promise<WriteResult> {
    return this.exclusively("writing", async () => {
      const resource = await this.resource(src);
      let target: Target;
      try {
        target = await this.openTarget("write");
      } catch (e) {
        await resource.readable.cancel().catch(() => {});
        throw e;
      }
      try {
        let data = resource.readable;
        if (handleKind(src) === "presigned_request") {
          const unpacked = await unpack(data);
          data = unpacked.data;
          if (unpacked.format) this.log.info(`decompressing the ${unpacked.format} image from the URL`);
        }
        return await this.writeImage(target, data);
      } finally {
        await target.file.close();
      }
    });
  }

  private async writeImage({ file, kind }: Target, data: ReadableStream<Uint8Array>): Promise<WriteResult> {
    const { path, size, block_size: blockSize, verify } = this.config;
    const started = performance.now();
    let lastLog = started;
    // A long flash shows in the exporter's log now and then, as upstream's does.
    const onBlock = (bytes: number) => {
      const now = performance.now();
      if (now - lastLog < PROGRESS_LOG_MS) return;
      lastLog = now;
      this.log.info(`writing ${path}: ${formatTransfer(bytes, (now - started) / 1000)} so far`);
    };
    const limit = kind === "file" ? size : undefined;
    const written = await writeBlocks(file, data, { blockSize, limit, hash: verify, onBlock });
    // An image file is exactly the image, or the configured disk size (sparse beyond the image).
    if (kind === "file") await file.truncate(size ?? written.bytes);
    await file.sync();
    const sha256 = verify ? await this.readBack(file, written.bytes, written.sha256!) : undefined;
    const seconds = (performance.now() - started) / 1000;
    this.log.info(`wrote ${formatTransfer(written.bytes, seconds)} to ${path}${sha256 ? `, sha256 ${sha256} verified` : ""}`);
    return sha256 ? { bytes: written.bytes, sha256 } : { bytes: written.bytes };
  }

  override async read(dst: unknown): Promise<void> {
    await this.exclusively("reading", async () => {
      const { file } = await this.openTarget("read");
      try {
        const resource = await this.resource(dst);
        const started = performance.now();
        const bytes = await readBlocks(file, resource.writable, this.config.block_size);
        this.log.info(`read ${formatTransfer(bytes, (performance.now() - started) / 1000)} from ${this.config.path}`);
      } finally {
        await file.close();
      }
    });
  }

  private switchTo(to: Mux): void {
    if (this.busy && to !== "host") throw new DriverError(`cannot switch the storage to ${to} while ${this.busy} it`);
    this.mux = to;
    this.log.info(to === "off" ? "storage disconnected" : `storage connected to ${to}`);
  }

  /** Runs one write or read at a time, and never while the DUT has the storage. */
  private async exclusively<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.mux === "dut") {
      throw new DriverError(`the storage is connected to the DUT: switch it to the host first ('j <storage> host') before ${what}`);
    }
    if (this.busy) throw new DriverError(`the storage is busy ${this.busy}; try again when that is done`);
    this.busy = what;
    try {
      return await run();
    } finally {
      this.busy = undefined;
    }
  }

  private async openTarget(purpose: "write" | "read"): Promise<Target> {
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
    try {
      return { file: await open(path, flags, 0o644), kind: block ? "block" : "file" };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EBUSY") throw new DriverError(`${path} is in use (mounted, or open elsewhere): unmount it first`);
      if (code === "EACCES" || code === "EPERM") throw new DriverError(`no permission to ${purpose} ${path}: give the exporter's user access to it`);
      throw e;
    }
  }

  /** Syncs, drops the cached pages and reads the data back: returns the digest if it matches. */
  private async readBack(file: FileHandle, bytes: number, expected: string): Promise<string> {
    if (!(await dropCache(file.fd))) this.log.warn("could not drop the page cache: verifying against cached data");
    const actual = await hashPrefix(file, bytes, this.config.block_size);
    if (actual !== expected) {
      throw new DriverError(`verification failed: sent data has sha256 ${expected}, but ${this.config.path} reads back ${actual}`);
    }
    return actual;
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

/** `client_stream` or `presigned_request`; the resource call reports anything malformed. */
function handleKind(handle: unknown): unknown {
  try {
    const h = typeof handle === "string" ? JSON.parse(handle) : handle;
    return typeof h === "object" && h !== null ? (h as { kind?: unknown }).kind : undefined;
  } catch {
    return undefined;
  }
}
