/**
 * DutSim: a simulated board for demos and tests. A composite with a `power` child
 * (upstream's Power interface) and a `console` child that upstream's serial client
 * drives, both wired to one DutSimBoard.
 */
import {
  type ByteStream, COMPOSITE_CLIENT, config, type ConfigOf, Driver, exported, exportStream, InvalidArgumentError,
} from "@jumpstarter/driver";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { VirtualConsole } from "../serial/virtual-console.ts";
import { DutSimBoard } from "./board.ts";
import { Uart } from "./uart.ts";

export { SERIAL_CLIENT } from "../serial/driver.ts";

const shape = {
  hostname: config.withDefault(config.string({ nonEmpty: true, description: "shown by the login prompt, the shell prompt and uname" }), "dutsim"),
  username: config.withDefault(config.string({ nonEmpty: true, description: "the user that can log in" }), "root"),
  password: config.optional(config.string({ description: "asked for after the user name; no password prompt when unset" })),
  arch: config.withDefault(config.string({ nonEmpty: true, description: "what uname -m reports" }), "aarch64"),
  boot_time_ms: config.withDefault(config.number({ integer: true, min: 0, max: 600_000, description: "power-on to login prompt, in milliseconds" }), 300),
  buffer_size: config.withDefault(config.number({ integer: true, min: 1024, max: 16 * 1024 * 1024, description: "bytes of console output kept while nobody reads" }), 65536),
};

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const USERNAME = /^[a-z_][a-z0-9_.-]*$/i;

export class DutSim extends Driver<ConfigOf<typeof shape>> {
  static override readonly client = COMPOSITE_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "composite";
  static override readonly summary = "a simulated board: power and a serial console with boot log, login and a tiny shell";

  readonly board: DutSimBoard;

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    if (!HOSTNAME.test(cfg.hostname)) {
      throw new InvalidArgumentError(`hostname: expected letters, digits, '-' and '.' (as a real hostname), got '${cfg.hostname}'`);
    }
    if (!USERNAME.test(cfg.username)) {
      throw new InvalidArgumentError(`username: expected a login name (letters, digits, '_', '.', '-'), got '${cfg.username}'`);
    }
    const uart = new Uart(cfg.buffer_size);
    this.board = new DutSimBoard(
      { hostname: cfg.hostname, username: cfg.username, password: cfg.password, arch: cfg.arch, bootTimeMs: cfg.boot_time_ms },
      (bytes) => uart.transmit(bytes),
    );
    this.children = { power: new DutSimPower(this.board), console: new DutSimConsole(this.board, uart) };
  }

  override async close(): Promise<void> {
    this.board.powerOff();
  }
}

/** The board's power supply: switching it boots or silences the board. */
export class DutSimPower extends PowerInterface {
  static override readonly summary = "the power supply of a DutSim board";

  constructor(private readonly board: DutSimBoard) {
    super({});
  }

  override async on(): Promise<void> {
    this.board.powerOn();
    this.log.info("power on");
  }

  override async off(): Promise<void> {
    this.board.powerOff();
    this.log.info("power off");
  }

  override async *read(): AsyncGenerator<PowerReading> {
    yield this.board.powered ? { voltage: 5.1, current: 0.4 } : { voltage: 0, current: 0 };
  }
}

/** The board's serial console: every connection sees the output and can type. */
export class DutSimConsole extends VirtualConsole {
  static override readonly summary = "the serial console of a DutSim board";
  static override readonly help = {
    connect: "Open the console (output, and input as typed keys)",
    set_dtr: "Set the DTR line (accepted and ignored: the simulated board has no modem lines)",
    set_rts: "Set the RTS line (accepted and ignored: the simulated board has no modem lines)",
  };

  constructor(
    private readonly board: DutSimBoard,
    private readonly uart: Uart,
  ) {
    super({});
  }

  /** Clients connected right now. */
  get connections(): number {
    return this.uart.readers;
  }

  @exportStream
  async connect(): Promise<ByteStream> {
    const stream = this.uart.connect((bytes) => this.board.input(bytes));
    this.log.info(`console connected (${this.connections} client${this.connections === 1 ? "" : "s"})`);
    return stream;
  }

  override async close(): Promise<void> {
    this.uart.closeAll();
  }
}

