/**
 * Clients of the storage interfaces, as upstream's jumpstarter_driver_opendal:
 * `j <storage> flash FILE|URL`, `dump FILE`, `host`, `dut`, `off`, `write-local-file FILE`.
 */
import { type CommandDef, defineCommand, DriverClient, InvalidArgumentError, repeatable } from "@jumpstarter/driver";
import type { WriteResult } from "./interface.ts";
import { COMPRESSIONS, download, parseCompression, type TransferOptions, type TransferResult, upload } from "./transfer.ts";

const compressionArg = {
  type: "string",
  description: `the file's compression: ${COMPRESSIONS.join(", ")} (flash: default recognised from the file; dump: from its extension)`,
} as const;

/** A storage switched between host and DUT, written and read through resources. */
export class StorageMuxClient extends DriverClient {
  /** Connects the storage to the exporter host. */
  async host(): Promise<void> {
    await this.call("host");
  }

  /** Connects the storage to the DUT. */
  async dut(): Promise<void> {
    await this.call("dut");
  }

  /** Disconnects the storage. */
  async off(): Promise<void> {
    await this.call("off");
  }

  /** Writes a resource (see `resource()`) to the storage. */
  write(handle: unknown): Promise<WriteResult | null> {
    return this.call("write", handle);
  }

  /** Reads the storage into a resource. */
  read(handle: unknown): Promise<void> {
    return this.call("read", handle);
  }

  /** Writes a local file (gzip, zstd, xz or bz2 recognised and decompressed) or an http(s) URL to the storage. */
  writeLocalFile(source: string, options: TransferOptions = {}): Promise<TransferResult> {
    return upload(this, source, (h) => this.write(h), { ...options, verb: "write" });
  }

  /** Reads the whole storage into a local file. */
  readLocalFile(path: string, options: TransferOptions = {}): Promise<TransferResult> {
    return download(this, path, (h) => this.read(h), { ...options, verb: "read" });
  }

  override cli(): CommandDef<any> {
    return defineCommand({ meta: { description: this.description ?? "Storage operations" }, subCommands: this.muxCommands() });
  }

  protected muxCommands(): Record<string, CommandDef<any>> {
    return {
      host: defineCommand({ meta: { description: this.help("host", "Connect storage to host") }, run: () => this.host() }),
      dut: defineCommand({ meta: { description: this.help("dut", "Connect storage to dut") }, run: () => this.dut() }),
      off: defineCommand({ meta: { description: this.help("off", "Disconnect storage") }, run: () => this.off() }),
      "write-local-file": defineCommand({
        meta: { description: "Write a local file to the storage device" },
        args: { file: { type: "positional", required: true, description: "the image (gzip, zstd, xz and bz2 are decompressed)" } },
        run: async ({ args }) => {
          await this.writeLocalFile(args.file, { progress: true });
        },
      }),
    };
  }
}

/** A storage mux that flashes: host, write, then dut (and host, read, dut for a dump). */
export class StorageMuxFlasherClient extends StorageMuxClient {
  /** Flashes an image file or http(s) URL; the storage ends up connected to the DUT. */
  async flash(source: string, options: TransferOptions & { target?: string } = {}): Promise<TransferResult> {
    if (options.target) throw new InvalidArgumentError(`this storage has no targets, got target '${options.target}'`);
    return this.onHostThenDut(() => upload(this, source, (h) => this.write(h), { ...options, verb: "flash" }));
  }

  /** Dumps the whole storage into a local file; the storage ends up connected to the DUT. */
  async dump(path: string, options: TransferOptions & { target?: string } = {}): Promise<TransferResult> {
    if (options.target) throw new InvalidArgumentError(`this storage has no targets, got target '${options.target}'`);
    return this.onHostThenDut(() => download(this, path, (h) => this.read(h), { ...options, verb: "dump" }));
  }

  /**
   * `work` with the storage on the host, then back to the DUT. When `work` fails, the
   * DUT switch is still tried, but its error does not replace `work`'s: with the
   * exporter gone, both fail, and the transfer's error is the one that says what happened.
   */
  private async onHostThenDut<T>(work: () => Promise<T>): Promise<T> {
    await this.host();
    let result: T;
    try {
      result = await work();
    } catch (e) {
      await this.dut().catch(() => {});
      throw e;
    }
    await this.dut();
    return result;
  }

  override cli(): CommandDef<any> {
    return defineCommand({
      meta: { description: this.description ?? "Storage operations" },
      subCommands: {
        flash: defineCommand({
          meta: { description: "Flash an image (a file or an http(s) URL) to the DUT's storage" },
          args: { file: { type: "positional", required: true, description: "image file, or http(s) URL the exporter fetches" }, compression: compressionArg },
          run: async ({ args }) => {
            await this.flash(args.file, { compression: parseCompression(args.compression), progress: true });
          },
        }),
        dump: defineCommand({
          meta: { description: "Dump the DUT's storage to a file" },
          args: { file: { type: "positional", required: true, description: "file to write" }, compression: compressionArg },
          run: async ({ args }) => {
            await this.dump(args.file, { compression: parseCompression(args.compression), progress: true });
          },
        }),
        ...this.muxCommands(),
      },
    });
  }
}

/** A flasher: images written to named targets (partitions) of the DUT. */
export class FlasherClient extends DriverClient {
  /**
   * Flashes an image file or http(s) URL to `target` (the driver's default when
   * unset), or several: `{ boot: "boot.img", rootfs: "rootfs.img.zst" }`.
   */
  async flash(source: string, options?: TransferOptions & { target?: string }): Promise<TransferResult>;
  async flash(sources: Record<string, string>, options?: TransferOptions): Promise<Record<string, TransferResult>>;
  async flash(
    source: string | Record<string, string>,
    options: TransferOptions & { target?: string } = {},
  ): Promise<TransferResult | Record<string, TransferResult>> {
    if (typeof source === "string") {
      return upload(this, source, (h) => this.call("flash", h, options.target ?? null), { ...options, verb: "flash" });
    }
    if (options.target) throw new InvalidArgumentError("'target' does not apply when flashing several images");
    const results: Record<string, TransferResult> = {};
    for (const [target, image] of Object.entries(source)) {
      results[target] = await upload(this, image, (h) => this.call("flash", h, target), { ...options, verb: "flash", target });
    }
    return results;
  }

  /** Dumps `target` (the driver's default when unset) into a local file. */
  dump(path: string, options: TransferOptions & { target?: string } = {}): Promise<TransferResult> {
    return download(this, path, (h) => this.call("dump", h, options.target ?? null), { ...options, verb: "dump" });
  }

  override cli(): CommandDef<any> {
    return defineCommand({
      meta: { description: this.description ?? "Generic flasher interface" },
      subCommands: {
        flash: defineCommand({
          meta: { description: "Flash an image (a file or an http(s) URL) to the DUT" },
          args: {
            file: { type: "positional", required: false, description: "image file, or http(s) URL the exporter fetches" },
            target: repeatable({ type: "string", alias: "t", description: "name:file, to flash a named target" }),
            compression: compressionArg,
          },
          run: async ({ args }) => {
            const compression = parseCompression(args.compression);
            // A repeatable flag arrives as every value given (see repeatable()).
            const specs = ([] as string[]).concat(args.target ?? []);
            if (specs.length > 0) {
              if (args.file) throw new InvalidArgumentError("give either FILE or --target name:file, not both");
              await this.flash(targetMap(specs), { compression, progress: true });
              return;
            }
            if (!args.file) throw new InvalidArgumentError("FILE is required unless --target/-t is used");
            await this.flash(args.file, { compression, progress: true });
          },
        }),
        dump: defineCommand({
          meta: { description: "Dump image from DUT to file" },
          args: {
            file: { type: "positional", required: true, description: "file to write" },
            target: { type: "string", description: "the target (partition) to dump" },
            compression: compressionArg,
          },
          run: async ({ args }) => {
            await this.dump(args.file, { target: args.target, compression: parseCompression(args.compression), progress: true });
          },
        }),
      },
    });
  }
}

function targetMap(specs: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const spec of specs) {
    const colon = spec.indexOf(":");
    if (colon <= 0) throw new InvalidArgumentError(`invalid target spec '${spec}', expected name:file`);
    map[spec.slice(0, colon)] = spec.slice(colon + 1);
  }
  return map;
}
