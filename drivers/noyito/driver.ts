/**
 * NOYITO USB relay boards as upstream's jumpstarter_driver_noyito_relay: the 1/2
 * channel board behind a CH340 serial chip (NoyitoPowerSerial, 9600 baud) and the
 * 4/8 channel "HID drive-free" board (NoyitoPowerHID), with upstream's config
 * keys, commands, status() and client label.
 *
 * The serial port is opened through libc (so the tests' umockdev sees it, as it
 * sees sysfs) and set up with drivers/serial's termios code; the HID board's
 * reports go through its hidraw node, as upstream's hidapi (hidraw backend) does.
 * Each command opens the device, sends, and closes it again, as upstream does.
 */
import {
  config, DeadlineExceededError, DriverError, exported, InvalidArgumentError, NotImplementedDriverError, UnavailableError, type ConfigOf,
} from "@jumpstarter/driver";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { configureRaw } from "../serial/termios.ts";
import { findOne, listed } from "../usb-common/find.ts";
import { Hidraw, hidrawNodeOf, withHidraw } from "../usb-common/hidraw.ts";
import { closeFd, isTerminal, O, openPath, readFd, SyscallError, waitReadable, writeFd } from "../native/libc.ts";
import { deviceName, ttyName, usbDeviceOfTty, usbId, usbSerialPorts, type UsbDevice } from "../usb-common/sysfs.ts";
import { buildCommand, channelsState, hasChannels, HID_STATUS_QUERY, parseStatus, SERIAL_STATUS_QUERY } from "./protocol.ts";
import { NOYITO_CLIENT } from "./clients.ts";

export { NOYITO_CLIENT };

/** The CH340 on the serial boards. */
const CH340 = { vendorId: 0x1a86, productId: 0x7523 };
const BAUDRATE = 9600;
/** Upstream's serial timeout and HID read timeout. */
const SERIAL_TIMEOUT_MS = 2000;
const HID_TIMEOUT_MS = 500;

const HELP = {
  on: "Energise the relay channel",
  off: "De-energise the relay channel",
  read: "Not implemented: a relay measures nothing",
  status: "The relay channel's state: on, off, or partial",
};

/** What both boards do with their channels; each says how a command and a status query travel. */
abstract class NoyitoRelay<C extends { all_channels: boolean; channel: number }> extends PowerInterface<C> {
  static override readonly client: string = NOYITO_CLIENT;
  static override readonly help = HELP;

  /** `NOYITO relay on /dev/ttyUSB0`, for messages. */
  protected abstract readonly board: string;
  protected abstract boardChannels(): number;
  protected abstract send(commands: Uint8Array[], what: string): Promise<void>;
  protected abstract query(): Promise<string>;

  protected channels(): number[] {
    const all = this.boardChannels();
    return this.config.all_channels ? Array.from({ length: all }, (_, i) => i + 1) : [this.config.channel];
  }

  override async on(): Promise<void> {
    await this.switch(1);
  }

  override async off(): Promise<void> {
    await this.switch(0);
  }

  private async switch(state: 0 | 1): Promise<void> {
    const channels = this.channels();
    await this.send(channels.map((c) => buildCommand(c, state)), `the ${state ? "on" : "off"} command`);
    this.log.info(`${this.board}: channel${channels.length > 1 ? "s" : ""} ${channels.join(", ")} ${state ? "on" : "off"}`);
  }

  override async *read(): AsyncGenerator<PowerReading> {
    throw new NotImplementedDriverError(`${this.board}: a relay measures neither voltage nor current, so read is not implemented (as upstream)`);
  }

  /** "on", "off", or "partial" when the channels (all_channels) disagree. */
  @exported
  async status(): Promise<string> {
    const text = await this.query();
    try {
      return channelsState(parseStatus(text), this.channels(), this.board);
    } catch (e) {
      throw new DriverError((e as Error).message);
    }
  }
}

const serialShape = {
  port: config.string({ nonEmpty: true, description: "the board's serial port: /dev/ttyUSB0, /dev/serial/by-id/…" }),
  channel: config.withDefault(config.number({ integer: true, min: 1, max: 2, description: "the relay channel, 1 or 2" }), 1),
  all_channels: config.withDefault(config.boolean({ description: "switch both channels together (for high currents)" }), false),
};

/** The 1/2-channel board: a CH340 serial port at 9600 baud. */
export class NoyitoPowerSerial extends NoyitoRelay<ConfigOf<typeof serialShape>> {
  static override readonly configShape = serialShape;
  static override readonly summary = "a NOYITO 1/2-channel USB relay (CH340 serial), as upstream's jumpstarter_driver_noyito_relay";

  protected readonly board: string;

  constructor(cfg: ConfigOf<typeof serialShape>) {
    super(cfg);
    this.board = `NOYITO relay on ${cfg.port}`;
    closeFd(this.open());
    const tty = ttyName(cfg.port);
    const usb = tty === undefined ? undefined : usbDeviceOfTty(tty);
    if (usb && (usb.vendorId !== CH340.vendorId || usb.productId !== CH340.productId)) {
      this.log.warn(`${cfg.port} is a ${deviceName(usb)} at ${usb.location}, not the NOYITO board's CH340 (${usbId(CH340)}): is this the right port?`);
    }
  }

  protected boardChannels(): number {
    return 2;
  }

  /** Opens the port (read-write, not as the controlling terminal); throws what is wrong. */
  private open(): number {
    const { port } = this.config;
    let fd: number;
    try {
      fd = openPath(port, O.RDWR | O.NOCTTY | O.NONBLOCK);
    } catch (e) {
      const code = (e as SyscallError).code;
      if (code === "ENOENT") {
        const ports = usbSerialPorts();
        throw new UnavailableError(`${port} does not exist (${ports.length ? `USB serial ports here: ${ports.join(", ")}` : "this machine has no USB serial ports"})`);
      }
      if (code === "EACCES" || code === "EPERM") throw new DriverError(`${port}: permission denied (add the exporter's user to group dialout)`);
      throw new UnavailableError(`cannot open ${port}: ${(e as Error).message}`);
    }
    if (!isTerminal(fd)) {
      closeFd(fd);
      throw new InvalidArgumentError(`${port} is not a serial port (not a terminal)`);
    }
    return fd;
  }

  protected async send(commands: Uint8Array[], what: string): Promise<void> {
    await this.exchange(commands, what, false);
  }

  protected override async query(): Promise<string> {
    return (await this.exchange([SERIAL_STATUS_QUERY], "the status query", true))!;
  }

  private async exchange(commands: Uint8Array[], what: string, answer: boolean): Promise<string | undefined> {
    const fd = this.open();
    try {
      await configureRaw(fd, this.config.port, { baudrate: BAUDRATE, disableHupcl: false });
      for (const c of commands) writeFd(fd, c, `writing ${what} to ${this.config.port}`);
      if (!answer) return undefined;
      return this.readStatus(fd);
    } catch (e) {
      if (e instanceof SyscallError) throw new UnavailableError(e.message);
      throw e;
    } finally {
      closeFd(fd);
    }
  }

  /** The board's status lines, read until every channel asked about is there, for at most upstream's 2 s. */
  private readStatus(fd: number): string {
    const deadline = performance.now() + SERIAL_TIMEOUT_MS;
    const buf = new Uint8Array(256);
    let text = "";
    while (!hasChannels(text, this.channels())) {
      const left = deadline - performance.now();
      if (left <= 0 || !waitReadable(fd, left, `reading ${this.config.port}`)) {
        if (text) return text;
        throw new DeadlineExceededError(`${this.board} did not answer the status query within ${SERIAL_TIMEOUT_MS / 1000} s`);
      }
      const n = readFd(fd, buf, `reading ${this.config.port}`);
      if (n) text += Buffer.from(buf.subarray(0, n)).toString("latin1");
    }
    return text;
  }
}

const hidShape = {
  vendor_id: config.withDefault(config.number({ integer: true, min: 0, max: 0xffff, description: "the board's USB vendor id" }), 5131),
  product_id: config.withDefault(config.number({ integer: true, min: 0, max: 0xffff, description: "the board's USB product id" }), 2007),
  num_channels: config.withDefault(config.number({ integer: true, description: "the board's channels: 4 or 8" }), 4),
  channel: config.withDefault(config.number({ integer: true, min: 1, description: "the relay channel, 1 to num_channels" }), 1),
  all_channels: config.withDefault(config.boolean({ description: "switch every channel together (for high currents)" }), false),
  serial: config.optional(config.string({ nonEmpty: true, description: "the board's USB serial number, to choose among several (beyond upstream)" })),
};

/** The 4/8-channel "HID drive-free" board. */
export class NoyitoPowerHID extends NoyitoRelay<ConfigOf<typeof hidShape>> {
  static override readonly configShape = hidShape;
  static override readonly summary = "a NOYITO 4/8-channel HID USB relay, as upstream's jumpstarter_driver_noyito_relay";

  protected readonly board: string;
  private readonly kind: { vendorId: number; productId: number };

  constructor(cfg: ConfigOf<typeof hidShape>) {
    super(cfg);
    if (cfg.num_channels !== 4 && cfg.num_channels !== 8) throw new InvalidArgumentError(`num_channels must be 4 or 8, got ${cfg.num_channels}`);
    if (!cfg.all_channels && cfg.channel > cfg.num_channels) {
      throw new InvalidArgumentError(`channel must be 1..${cfg.num_channels}, got ${cfg.channel}`);
    }
    this.kind = { vendorId: cfg.vendor_id, productId: cfg.product_id };
    const { device, others } = findOne("NOYITO HID relay", [this.kind], cfg.serial, "first");
    if (others.length) this.log.warn(`several NOYITO HID relays found: using the one at ${device.location} (also found: ${listed(others)}); set serial to choose`);
    this.board = `NOYITO HID relay at ${device.location}`;
    Hidraw.check(hidrawNodeOf(device, "the NOYITO HID relay"), device, "the NOYITO HID relay");
  }

  protected boardChannels(): number {
    return this.config.num_channels;
  }

  protected async send(commands: Uint8Array[], what: string): Promise<void> {
    this.withBoard((h) => {
      for (const c of commands) h.write(0, c, what);
    });
  }

  protected override async query(): Promise<string> {
    return this.withBoard((h) => {
      h.write(0, HID_STATUS_QUERY, "the status query");
      // The answer comes as several input reports: read until every channel asked about is there.
      const deadline = performance.now() + HID_TIMEOUT_MS;
      let text = "";
      while (!hasChannels(text, this.channels())) {
        const report = h.read(Math.max(0, deadline - performance.now()), "the status query");
        if (!report) {
          if (text) return text;
          throw new DeadlineExceededError(`${this.board} did not answer the status query within ${HID_TIMEOUT_MS / 1000} s`);
        }
        text += Buffer.from(report).toString("latin1");
      }
      return text;
    });
  }

  private withBoard<T>(use: (h: Hidraw) => T): T {
    const device: UsbDevice = findOne("NOYITO HID relay", [this.kind], this.config.serial, "first").device;
    return withHidraw(hidrawNodeOf(device, "the NOYITO HID relay"), device, "the NOYITO HID relay", use);
  }
}
