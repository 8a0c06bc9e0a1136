/**
 * Tftp: serves a directory of the exporter read-only over TFTP, for boards whose
 * boot loader fetches kernels and images that way. Same type path, client label,
 * config keys and wire methods as upstream's jumpstarter_driver_tftp (start, stop,
 * get_host, get_port); `put_file` is a jmp addition that uploads into the directory.
 */
import { config, type ConfigOf, Driver, exported, InvalidArgumentError } from "@jumpstarter/driver";
import { defaultHostAddress } from "../http/host.ts";
import { ServedDirectory } from "../http/served-dir.ts";
import { TftpServer } from "./server.ts";
import { TFTP_CLIENT } from "./clients.ts";

export { TFTP_CLIENT };

const shape = {
  root_dir: config.withDefault(config.string({ nonEmpty: true, description: "the directory served" }), "/var/lib/tftpboot"),
  host: config.withDefault(
    config.string({ description: "address to listen on; empty: the address of the exporter's default route" }),
    "",
  ),
  port: config.withDefault(config.number({ integer: true, min: 0, max: 65535, description: "UDP port (0: any free port)" }), 69),
  remove_created_on_close: config.withDefault(
    config.boolean({ description: "remove the files uploaded with put_file when the session ends" }),
    true,
  ),
};

export class Tftp extends Driver<ConfigOf<typeof shape>> {
  static override readonly client = TFTP_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "storage";
  static override readonly summary = "a read-only TFTP server for a directory of the exporter (blksize, tsize, timeout options)";
  static override readonly help = {
    start: "Start the TFTP server",
    stop: "Stop the TFTP server",
    get_host: "The address the server listens on",
    get_port: "The UDP port the server listens on",
    put_file: "Upload a file into the served directory",
  };

  private readonly dir: ServedDirectory;
  private readonly server: TftpServer;
  private host?: string;
  private boundPort?: number;

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    this.dir = new ServedDirectory(cfg.root_dir);
    // The session swaps `this.log` for one that reaches clients; look it up per line.
    this.server = new TftpServer(this.dir, {
      info: (m) => this.log.info(m),
      warn: (m) => this.log.warn(m),
    });
  }

  @exported
  async start(): Promise<void> {
    if (this.server.running) {
      this.log.warn("the TFTP server is already running");
      return;
    }
    await this.dir.ensure();
    const host = await this.getHost();
    try {
      this.boundPort = await this.server.listen(host, this.config.port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const hint = code === "EACCES" ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : "";
      throw new InvalidArgumentError(`cannot listen on ${host} port ${this.config.port}: ${(e as Error).message}${hint}`);
    }
    this.log.info(`TFTP server serving ${this.config.root_dir} on ${host} port ${this.boundPort}`);
  }

  @exported
  async stop(): Promise<void> {
    if (!this.server.running) {
      this.log.warn("the TFTP server is not running");
      return;
    }
    await this.server.close();
    this.boundPort = undefined;
    this.log.info("TFTP server stopped");
  }

  @exported
  async getHost(): Promise<string> {
    this.host ??= this.config.host || (await defaultHostAddress());
    return this.host;
  }

  /** The port in use while running (port 0 picks one), the configured one before. */
  @exported
  async getPort(): Promise<number> {
    return this.boundPort ?? this.config.port;
  }

  /** Writes the client's file as `name` under root_dir. */
  @exported
  async putFile(name: unknown, handle: unknown): Promise<void> {
    if (typeof name !== "string") throw new InvalidArgumentError(`put_file expects a file name, got ${JSON.stringify(name)}`);
    const data = await this.resource(this.requireArg(handle, "handle"));
    const path = await this.dir.write(name, data.readable);
    this.log.info(`stored ${path}`);
  }

  override async close(): Promise<void> {
    await this.server.close();
    if (this.config.remove_created_on_close) await this.dir.removeCreated();
  }
}
