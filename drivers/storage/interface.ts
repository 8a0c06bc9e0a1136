/**
 * The storage interfaces of upstream's jumpstarter_driver_opendal: a storage mux
 * (storage switched between the exporter host and the DUT, written and read
 * through resources) and a flasher (images written to named targets). Same client
 * labels and wire methods, so upstream clients and exporters work with ours.
 */
import { Driver, exported, NotImplementedDriverError } from "@jumpstarter/driver";
import { STORAGE_MUX_CLIENT, STORAGE_MUX_FLASHER_CLIENT, FLASHER_CLIENT } from "./clients.ts";

export { STORAGE_MUX_CLIENT, STORAGE_MUX_FLASHER_CLIENT, FLASHER_CLIENT };

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

  @exported
  async flash(_source: unknown, _target?: string | null): Promise<WriteResult | void> {
    throw unimplemented("flash");
  }

  @exported
  async dump(_target: unknown, _partition?: string | null): Promise<void> {
    throw unimplemented("dump");
  }
}
