/**
 * The storage interfaces of upstream's jumpstarter_driver_opendal: a storage mux
 * (storage switched between the exporter host and the DUT, written and read
 * through resources) and a flasher (images written to named targets). Same client
 * labels and wire methods, so upstream clients and exporters work with ours.
 */
import { type ByteStream, Driver, exported, NotImplementedDriverError } from "@jumpstarter/driver";
import { DECOMPRESSES_LABEL, decompressIfStill, DRIVER_DECODED, type Format } from "./unpack.ts";

export const STORAGE_MUX_CLIENT = "jumpstarter_driver_opendal.client.StorageMuxClient";
export const STORAGE_MUX_FLASHER_CLIENT = "jumpstarter_driver_opendal.client.StorageMuxFlasherClient";
export const FLASHER_CLIENT = "jumpstarter_driver_opendal.client.FlasherClient";

/** What `write` and `flash` report; upstream's drivers return nothing, which clients accept too. */
export interface WriteResult {
  /** Bytes written to the storage (after decompression). */
  bytes: number;
  /** The sha256 of what was written, read back from the storage, when the driver verifies. */
  sha256?: string;
}

const unimplemented = (what: string) => new NotImplementedDriverError(`${what} is not implemented by this storage driver`);

/** Storage that is switched between the exporter host and the DUT. */
export abstract class StorageMuxInterface<C = Record<string, unknown>> extends Driver<C> {
  static override readonly client: string = STORAGE_MUX_CLIENT;
  static override readonly driverType: string = "storage";
  static override readonly help: Record<string, string> = {
    host: "Connect storage to host",
    dut: "Connect storage to dut",
    off: "Disconnect storage",
    write: "Write a resource to the storage",
    read: "Read the storage into a resource",
  };

  /** Says which formats `resource` decompresses, so clients send such files as they are. */
  override extraLabels(): Record<string, string> {
    return withDecompressesLabel(super.extraLabels());
  }

  /** A client's image sent as xz or bz2 arrives decompressed (see DECOMPRESSES_LABEL). */
  override async resource(handle: unknown): Promise<ByteStream> {
    return decompressing(await super.resource(handle), handle);
  }

  @exported
  async host(): Promise<void> {
    throw unimplemented("host");
  }

  @exported
  async dut(): Promise<void> {
    throw unimplemented("dut");
  }

  @exported
  async off(): Promise<void> {
    throw unimplemented("off");
  }

  /** Writes the resource `src` (a handle) to the storage, from its start. */
  @exported
  async write(_src: unknown): Promise<WriteResult | void> {
    throw unimplemented("write");
  }

  /** Streams the storage's content into the resource `dst` (a handle). */
  @exported
  async read(_dst: unknown): Promise<void> {
    throw unimplemented("read");
  }
}

/** A storage mux whose client also flashes and dumps (host, write or read, then dut). */
export abstract class StorageMuxFlasherInterface<C = Record<string, unknown>> extends StorageMuxInterface<C> {
  static override readonly client: string = STORAGE_MUX_FLASHER_CLIENT;
}

/** Writes images to named targets (partitions) of a device, and reads them back. */
export abstract class FlasherInterface<C = Record<string, unknown>> extends Driver<C> {
  static override readonly client: string = FLASHER_CLIENT;
  static override readonly driverType: string = "storage";
  static override readonly help: Record<string, string> = {
    flash: "Flash an image (a resource) to a target",
    dump: "Dump a target into a resource",
  };

  override extraLabels(): Record<string, string> {
    return withDecompressesLabel(super.extraLabels());
  }

  override async resource(handle: unknown): Promise<ByteStream> {
    return decompressing(await super.resource(handle), handle);
  }

  @exported
  async flash(_source: unknown, _target?: string | null): Promise<WriteResult | void> {
    throw unimplemented("flash");
  }

  @exported
  async dump(_target: unknown, _partition?: string | null): Promise<void> {
    throw unimplemented("dump");
  }
}

/**
 * No label when the exporter runs with JMP_DISABLE_COMPRESSION=1 (sparing its CPU, as
 * upstream): clients then go through the runtime's negotiation, which declines.
 */
function withDecompressesLabel(labels: Record<string, string>): Record<string, string> {
  if (process.env.JMP_DISABLE_COMPRESSION === "1") return labels;
  return { ...labels, [DECOMPRESSES_LABEL]: DRIVER_DECODED.join(",") };
}

function decompressing(stream: ByteStream, handle: unknown): ByteStream {
  const format = namedFormat(handle);
  return format ? { ...stream, readable: decompressIfStill(stream.readable, format) } : stream;
}

/** The xz or bz2 a client-stream handle names; the runtime has already checked the handle. */
function namedFormat(handle: unknown): Format | undefined {
  let h = handle;
  if (typeof h === "string") {
    try {
      h = JSON.parse(h);
    } catch {
      return undefined;
    }
  }
  if (typeof h !== "object" || h === null) return undefined;
  const { kind, x_jmp_content_encoding: encoding } = h as { kind?: unknown; x_jmp_content_encoding?: unknown };
  return kind === "client_stream" && DRIVER_DECODED.includes(encoding as Format) ? (encoding as Format) : undefined;
}
