/**
 * A storage mux whose storage is one disk (an image file, a block device, an SD card
 * behind a mux) written and read in whole blocks: write (an image a URL names is
 * unpacked on the way), its progress in the log, the optional sha256 read-back, and
 * read. ImageStorage and SDWire say how their disk is opened, made durable and
 * closed, and when a write or read may run.
 */
import type { FileHandle } from "node:fs/promises";
import { DriverError } from "@jumpstarter/driver";
import { dropCache } from "./cache.ts";
import { StorageMuxFlasherInterface, type WriteResult } from "./interface.ts";
import { hashPrefix, readBlocks, writeBlocks } from "./io.ts";
import { formatTransfer } from "./units.ts";
import { unpack } from "./unpack.ts";

const PROGRESS_LOG_MS = 10_000;

/** The disk, opened for one write or read. */
export interface OpenDisk {
  /** Its path, for messages. */
  name: string;
  file: FileHandle;
  /** Refuse an image larger than this (bytes). */
  limit?: number;
  /** After the image's `bytes` are written: makes them durable (truncate, sync). */
  settle(bytes: number): Promise<void>;
  close(): Promise<void>;
}

export abstract class BlockStorage<C extends { block_size: number; verify: boolean }> extends StorageMuxFlasherInterface<C> {
  /** What the transfer under way does ("writing", "reading"), while one runs: one at a time. */
  protected busy?: string;

  /** `the storage`, `the SDWire`: for messages. */
  protected abstract readonly storageName: string;

  /** Opens the disk; a write's `open` fails before any of the image is read. */
  protected abstract openDisk(purpose: "write" | "read"): Promise<OpenDisk>;

  /** Throws when a write or read (`what`: "writing", "reading") may not start now, for more than another one running. */
  protected refuseTransfer(_what: string): void {}

  /** After a write has been made durable, verified and logged, before the storage may change hands. */
  protected async afterWrite(): Promise<void> {}

  override async write(src: unknown): Promise<WriteResult> {
    return this.exclusively("writing", async () => {
      const resource = await this.resource(src);
      let disk: OpenDisk;
      try {
        disk = await this.openDisk("write");
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
        // Only the source's own chunks go back to it (not those a decompressor made).
        const result = await this.writeImage(disk, data, data === resource.readable ? resource.recycle : undefined);
        await this.afterWrite();
        return result;
      } finally {
        await disk.close();
      }
    });
  }

  private async exclusively<T>(what: string, run: () => Promise<T>): Promise<T> {
    this.refuseTransfer(what);
    if (this.busy) throw new DriverError(`${this.storageName} is busy ${this.busy}; try again when that is done`);
    this.busy = what;
    try {
      return await run();
    } finally {
      this.busy = undefined;
    }
  }

  override async read(dst: unknown): Promise<void> {
    await this.exclusively("reading", async () => {
      const disk = await this.openDisk("read");
      try {
        const resource = await this.resource(dst);
        const started = performance.now();
        const bytes = await readBlocks(disk.file, resource.writable, this.config.block_size);
        this.log.info(`read ${formatTransfer(bytes, (performance.now() - started) / 1000)} from ${disk.name}`);
      } finally {
        await disk.close();
      }
    });
  }

  private async writeImage(disk: OpenDisk, data: ReadableStream<Uint8Array>, recycle?: (chunk: Uint8Array) => void): Promise<WriteResult> {
    const { block_size: blockSize, verify } = this.config;
    const started = performance.now();
    let lastLog = started;
    // A long flash shows in the exporter's log now and then, as upstream's does.
    const onBlock = (bytes: number) => {
      const now = performance.now();
      if (now - lastLog < PROGRESS_LOG_MS) return;
      lastLog = now;
      this.log.info(`writing ${disk.name}: ${formatTransfer(bytes, (now - started) / 1000)} so far`);
    };
    const written = await writeBlocks(disk.file, data, { blockSize, limit: disk.limit, hash: verify, onBlock, recycle });
    await disk.settle(written.bytes);
    const sha256 = verify ? await this.readBack(disk, written.bytes, written.sha256!) : undefined;
    this.log.info(`wrote ${formatTransfer(written.bytes, (performance.now() - started) / 1000)} to ${disk.name}${sha256 ? `, sha256 ${sha256} verified` : ""}`);
    return sha256 ? { bytes: written.bytes, sha256 } : { bytes: written.bytes };
  }

  /** Drops the cached pages and reads the data back: returns the digest if it matches. */
  private async readBack(disk: OpenDisk, bytes: number, expected: string): Promise<string> {
    if (!(await dropCache(disk.file.fd))) this.log.warn("could not drop the page cache: verifying against cached data");
    const actual = await hashPrefix(disk.file, bytes, this.config.block_size);
    if (actual !== expected) {
      throw new DriverError(`verification failed: sent data has sha256 ${expected}, but ${disk.name} reads back ${actual}`);
    }
    return actual;
  }
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
