/** The QEMU board's own children: its power switch, serial console and disk flasher. */
import {
  type ByteStream, Driver, exported, exportStream, InvalidArgumentError, NotImplementedDriverError, UnavailableError,
} from "@jumpstarter/driver";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { VirtualConsole } from "../serial/virtual-console.ts";
import { FlasherInterface, type WriteResult } from "../storage/interface.ts";
import { writeImage } from "./disk.ts";
import type { Qemu } from "./driver.ts";

/** On starts qemu-system-*, off stops it: like pulling the plug, the guest gets no warning. */
export class QemuPower extends PowerInterface {
  static override readonly summary = "the power of a QEMU board (starts and stops the QEMU process)";

  /** A power on in progress: a second `on` meanwhile waits for it instead of starting another QEMU. */
  private starting?: Promise<void>;

  constructor(private readonly board: Qemu) {
    super({});
  }

  override async on(): Promise<void> {
    if (this.starting) return this.starting;
    if (this.board.vm.running) {
      this.log.warn("already powered on, ignoring request");
      return;
    }
    this.starting = this.board.powerOn().finally(() => (this.starting = undefined));
    await this.starting;
    this.log.info("power on");
  }

  override async off(): Promise<void> {
    if (!this.board.vm.running) {
      this.log.warn("already powered off, ignoring request");
      return;
    }
    await this.board.vm.stop();
    this.log.info("power off");
  }

  override async *read(): AsyncGenerator<PowerReading> {
    throw new NotImplementedDriverError("a QEMU board has no power meter");
  }

  override async close(): Promise<void> {
    await this.board.vm.stop();
  }
}


/**
 * The guest's first serial port. Output that arrives while no client is connected
 * waits for the next one (up to console_buffer bytes); the connection survives
 * power cycles, like a cable plugged into a real board.
 */
export class QemuConsole extends VirtualConsole {
  static override readonly summary = "the serial console of a QEMU board";
  static override readonly help = {
    connect: "Open the console (the guest's output, and input as typed keys)",
    set_dtr: "Accepted and ignored: the virtual port has no modem lines",
    set_rts: "Accepted and ignored: the virtual port has no modem lines",
  };

  constructor(private readonly board: Qemu) {
    super({});
  }

  @exportStream
  async connect(): Promise<ByteStream> {
    return this.board.uart.connect((bytes) => this.board.vm.input(bytes));
  }

  override async close(): Promise<void> {
    this.board.uart.closeAll();
  }
}

/** Writes images to the board's disk (`root`, the default target) or its firmware (`bios`). */
export class QemuFlasher extends FlasherInterface {
  static override readonly summary = "the disk image of a QEMU board (flash, dump)";
  static override readonly help = {
    flash: "Write an image to the disk (target root, the default) or the firmware (target bios)",
    dump: "Read the disk (or the firmware) back",
  };

  constructor(private readonly board: Qemu) {
    super({});
  }

  override async flash(handle: unknown, target?: string | null): Promise<WriteResult> {
    const path = this.board.targetPath(target);
    if (this.board.vm.running) throw new UnavailableError("cannot flash while the board is powered on; power it off first");
    if (!existsSync(dirname(path))) throw new InvalidArgumentError(`cannot flash ${path}: its directory does not exist`);
    const source = await this.resource(this.requireArg(handle, "handle"));
    const started = Date.now();
    const bytes = await writeImage(path, source.readable);
    this.log.info(`flashed ${bytes} bytes to ${target ?? "root"} (${path}) in ${Date.now() - started} ms`);
    return { bytes };
  }

  override async dump(handle: unknown, target?: string | null): Promise<void> {
    const path = target === "bios" ? this.board.biosPath() : this.board.targetPath(target);
    if (!path || !existsSync(path)) throw new InvalidArgumentError(`nothing to dump: ${target ?? "root"} has no image yet`);
    const sink = await this.resource(this.requireArg(handle, "handle"));
    await Bun.file(path).stream().pipeTo(sink.writable);
  }
}
