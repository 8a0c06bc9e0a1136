/**
 * The mocks of upstream's jumpstarter_driver_opendal: storage that is a temporary
 * file (or, for the flasher, one temporary file per target), for tests and demos.
 * Unlike ImageStorage they do not refuse anything while "connected to the DUT".
 */
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "@jumpstarter/driver";
import {
  FlasherInterface, STORAGE_MUX_FLASHER_CLIENT, StorageMuxInterface, type WriteResult,
} from "./interface.ts";
import { readBlocks, writeBlocks } from "./io.ts";
import { formatBytes } from "./units.ts";

const BLOCK = 1 << 20;

/** A fresh temporary directory for one driver instance, removed at session end. */
class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), "jmp-mock-storage-"));

  async write(name: string, data: ReadableStream<Uint8Array>): Promise<WriteResult> {
    const file = await open(join(this.dir, name), "w");
    try {
      const { bytes } = await writeBlocks(file, data, { blockSize: BLOCK });
      await file.sync();
      return { bytes };
    } finally {
      await file.close();
    }
  }

  async read(name: string, sink: WritableStream<Uint8Array>): Promise<number> {
    let file;
    try {
      file = await open(join(this.dir, name), "r");
    } catch {
      await sink.abort().catch(() => {});
      throw new InvalidArgumentError(`nothing has been written to '${name}' yet`);
    }
    try {
      return await readBlocks(file, sink, BLOCK);
    } finally {
      await file.close();
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class MockStorageMux extends StorageMuxInterface {
  static override readonly summary: string = "a storage mux backed by a temporary file";
  private readonly scratch = new Scratch();

  /** The temporary file that plays the storage. */
  get path(): string {
    return join(this.scratch.dir, "storage");
  }

  override async host(): Promise<void> {
    this.log.info("storage connected to host");
  }

  override async dut(): Promise<void> {
    this.log.info("storage connected to dut");
  }

  override async off(): Promise<void> {
    this.log.info("storage disconnected");
  }

  override async write(src: unknown): Promise<WriteResult> {
    const { readable } = await this.resource(src);
    const result = await this.scratch.write("storage", readable);
    this.log.info(`wrote ${formatBytes(result.bytes)}`);
    return result;
  }

  override async read(dst: unknown): Promise<void> {
    const { writable } = await this.resource(dst);
    const bytes = await this.scratch.read("storage", writable);
    this.log.info(`read ${formatBytes(bytes)}`);
  }

  override async close(): Promise<void> {
    this.scratch.remove();
  }
}

/** MockStorageMux whose client also offers flash and dump. */
export class MockStorageMuxFlasher extends MockStorageMux {
  static override readonly client = STORAGE_MUX_FLASHER_CLIENT;
  static override readonly summary = "a flashable storage mux backed by a temporary file";
}

/** A flasher with one temporary file per target (`default` when none is named). */
export class MockFlasher extends FlasherInterface {
  static override readonly summary = "a flasher writing each target to a temporary file";
  private readonly scratch = new Scratch();

  /** The temporary file that plays `target`. */
  pathOf(target?: string | null): string {
    return join(this.scratch.dir, targetName(target));
  }

  override async flash(source: unknown, target?: string | null): Promise<WriteResult> {
    const name = targetName(target);
    const { readable } = await this.resource(source);
    const result = await this.scratch.write(name, readable);
    this.log.info(`flashed ${formatBytes(result.bytes)} to ${name}`);
    return result;
  }

  override async dump(destination: unknown, partition?: string | null): Promise<void> {
    const name = targetName(partition);
    const { writable } = await this.resource(destination);
    const bytes = await this.scratch.read(name, writable);
    this.log.info(`dumped ${formatBytes(bytes)} from ${name}`);
  }

  override async close(): Promise<void> {
    this.scratch.remove();
  }
}

function targetName(target: string | null | undefined): string {
  const name = target ?? "default";
  // Target names become file names in our directory: nothing that climbs out of it.
  if (!/^[\w.-]+$/.test(name) || name === "." || name === "..") {
    throw new InvalidArgumentError(`target must be a simple name (letters, digits, '.', '_', '-'), got '${name}'`);
  }
  return name;
}
