/**
 * PySerial: a serial port as a byte stream, compatible with upstream's
 * jumpstarter_driver_pyserial (same type path, client label, config keys and
 * wire methods: connect, set_dtr, set_rts, close).
 */
import fs from "node:fs";
import net from "node:net";
import {
  config, Driver, exported, exportStream, InvalidArgumentError, socketByteStream, UnavailableError,
  type ByteStream, type ConfigOf,
} from "@jumpstarter/driver";
import { TtyPort } from "./port.ts";
import { setModemLine, TIOCM_DTR, TIOCM_RTS } from "./termios.ts";
import { throttled } from "./throttle.ts";
import { SERIAL_CLIENT } from "./clients.ts";

export { SERIAL_CLIENT };

const shape = {
  url: config.string({ nonEmpty: true, description: "a device path (/dev/ttyUSB0, a pty), loop:// or socket://HOST:PORT" }),
  baudrate: config.withDefault(config.number({ integer: true, min: 1, description: "bits per second" }), 115200),
  check_present: config.withDefault(config.boolean({ description: "fail at load when the device path is missing" }), true),
  cps: config.optional(config.number({ min: 0, description: "characters per second sent to the device (0 or unset: no limit)" })),
  disable_hupcl: config.withDefault(config.boolean({ description: "keep DTR up when the port closes (no reset of boards wired to DTR)" }), false),
};

type Target =
  | { kind: "tty"; path: string }
  | { kind: "loop" }
  | { kind: "socket"; host: string; port: number };

/** Reads the url as pyserial would, for the schemes we support. */
function parseUrl(url: string): Target {
  if (url === "loop://" || url.startsWith("loop://?")) return { kind: "loop" };
  const socket = /^socket:\/\/(\[[^\]]+\]|[^:/?]+):(\d+)\/?$/.exec(url);
  if (socket) {
    const port = Number(socket[2]);
    if (port < 1 || port > 65535) throw new InvalidArgumentError(`url '${url}': the port must be from 1 to 65535`);
    return { kind: "socket", host: socket[1]!.replace(/^\[|\]$/g, ""), port };
  }
  if (url.startsWith("socket://")) throw new InvalidArgumentError(`url '${url}': expected socket://HOST:PORT`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme) {
    throw new InvalidArgumentError(
      `url '${url}': the ${scheme[1]}:// scheme is not supported (use a device path such as /dev/ttyUSB0, loop:// or socket://HOST:PORT)`,
    );
  }
  return { kind: "tty", path: url };
}

function checkPresent(path: string): void {
  if (!fs.existsSync(path)) {
    throw new InvalidArgumentError(
      `serial device ${path} does not exist (set check_present: false if it appears later, e.g. a USB serial port of the DUT)`,
    );
  }
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    throw new InvalidArgumentError(`serial device ${path} exists but this user may not read and write it (on most systems: join the 'dialout' group)`);
  }
}

export class PySerial extends Driver<ConfigOf<typeof shape>> {
  static override readonly client = SERIAL_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "serial";
  static override readonly summary = "a serial port (tty device, loop:// or socket://) as a byte stream";
  static override readonly help = {
    connect: "Open the serial port as a byte stream",
    set_dtr: "Set the DTR control line",
    set_rts: "Set the RTS control line",
    close: "Close the open connection to the port, if any",
  };

  private readonly target: Target;
  private tty?: TtyPort;
  private ttyInUse = false;
  private readonly sockets = new Set<net.Socket>();

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    this.target = parseUrl(cfg.url);
    if (this.target.kind === "tty" && cfg.check_present) checkPresent(this.target.path);
  }

  @exportStream
  async connect(): Promise<ByteStream> {
    const { url, baudrate, cps } = this.config;
    const stream = await this.open();
    this.log.info(`connected to ${url} at ${baudrate} baud${cps ? `, ${cps} characters per second` : ""}`);
    return cps ? { ...stream, writable: throttled(stream.writable, cps) } : stream;
  }

  private async open(): Promise<ByteStream> {
    const t = this.target;
    if (t.kind === "loop") {
      // Like pyserial's loop://: each connection is its own loopback.
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
      return { readable, writable };
    }
    if (t.kind === "socket") return this.openSocket(t.host, t.port);
    if (this.ttyInUse) {
      throw new UnavailableError(`${t.path} is already open in another connection; close that one first (or call close)`);
    }
    // Taken before the first await, so two connects arriving together cannot both open.
    this.ttyInUse = true;
    let port: TtyPort;
    try {
      port = await TtyPort.open(t.path, { baudrate: this.config.baudrate, disableHupcl: this.config.disable_hupcl });
    } catch (e) {
      this.ttyInUse = false;
      throw e;
    }
    this.tty = port;
    void port.closed.then(() => {
      this.tty = undefined;
      this.ttyInUse = false;
      this.log.info(`disconnected from ${t.path}`);
    });
    return port.stream;
  }

  private openSocket(host: string, port: number): Promise<ByteStream> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once("error", (e) => reject(new UnavailableError(`cannot connect to ${this.config.url}: ${e.message}`)));
      socket.once("connect", () => {
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        resolve(socketByteStream(socket));
      });
    });
  }

  @exported
  async setDtr(value: boolean): Promise<void> {
    await this.setLine("set_dtr", TIOCM_DTR, value);
  }

  @exported
  async setRts(value: boolean): Promise<void> {
    await this.setLine("set_rts", TIOCM_RTS, value);
  }

  private async setLine(method: string, line: number, value: unknown): Promise<void> {
    if (typeof value !== "boolean") throw new InvalidArgumentError(`${method} expects true or false, got ${JSON.stringify(value)}`);
    const t = this.target;
    if (t.kind !== "tty") {
      // pyserial's loop:// and socket:// accept and ignore modem lines too.
      this.log.info(`${method}(${value}) ignored: ${this.config.url} has no modem control lines`);
      return;
    }
    if (this.tty) return setModemLine(this.tty.fd, t.path, line, value);
    // No connection: open the device just for this, as upstream does.
    let fd: number;
    try {
      fd = fs.openSync(t.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    } catch (e) {
      throw new UnavailableError(`cannot open serial device ${t.path}: ${(e as Error).message}`);
    }
    try {
      await setModemLine(fd, t.path, line, value);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Ends the open connections (the clients see their stream end); also runs at session end. */
  @exported
  override async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await this.tty?.close();
  }
}
