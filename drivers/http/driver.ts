/**
 * HttpServer: serves a directory of the exporter over HTTP (GET and HEAD), for
 * boards and installers that fetch images by URL. Same type path, client label,
 * config keys and wire methods as upstream's jumpstarter_driver_http (start, stop,
 * get_url, get_host, get_port); `put_file` uploads into the directory (upstream
 * does that through an OpenDAL child).
 */
import { config, type ConfigOf, Driver, exported, InvalidArgumentError } from "@jumpstarter/driver";
import type { Server } from "bun";
import { hostPort } from "../network/connect.ts";
import { defaultHostAddress } from "./host.ts";
import { ServedDirectory } from "./served-dir.ts";
import { HTTP_CLIENT } from "./clients.ts";

export { HTTP_CLIENT };

const shape = {
  root_dir: config.withDefault(config.string({ nonEmpty: true, description: "the directory served" }), "/var/www"),
  host: config.optional(config.string({ nonEmpty: true, description: "address to listen on (default: the address of the exporter's default route)" })),
  port: config.withDefault(config.number({ integer: true, min: 0, max: 65535, description: "TCP port (0: any free port)" }), 8080),
  timeout: config.withDefault(
    config.number({ integer: true, min: 1, description: "seconds a connection may stay idle (at most 255 are honoured)" }),
    600,
  ),
  remove_created_on_close: config.withDefault(
    config.boolean({ description: "remove the files uploaded with put_file when the session ends" }),
    true,
  ),
};

/** Bun.serve's limit for idleTimeout. */
const MAX_IDLE_SECONDS = 255;

export class HttpServer extends Driver<ConfigOf<typeof shape>> {
  static override readonly client = HTTP_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "network";
  static override readonly summary = "an HTTP server for a directory of the exporter (GET, HEAD; uploads with put_file)";
  static override readonly help = {
    start: "Start the HTTP server",
    stop: "Stop the HTTP server",
    get_url: "The base URL of the server",
    get_host: "The address the server listens on",
    get_port: "The TCP port the server listens on",
    put_file: "Upload a file into the served directory",
  };

  private readonly dir: ServedDirectory;
  private server?: Server<undefined>;
  private host?: string;

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    this.dir = new ServedDirectory(cfg.root_dir);
  }

  @exported
  async start(): Promise<void> {
    if (this.server) {
      this.log.warn("the HTTP server is already running");
      return;
    }
    await this.dir.ensure();
    const host = await this.getHost();
    try {
      this.server = Bun.serve({
        hostname: host,
        port: this.config.port,
        idleTimeout: Math.min(this.config.timeout, MAX_IDLE_SECONDS),
        fetch: (request) => this.answer(request),
      });
    } catch (e) {
      throw new InvalidArgumentError(`cannot listen on ${hostPort(host, this.config.port)}: ${(e as Error).message}`);
    }
    this.log.info(`HTTP server serving ${this.config.root_dir} at ${await this.getUrl()}`);
  }

  @exported
  async stop(): Promise<void> {
    if (!this.server) {
      this.log.warn("the HTTP server is not running");
      return;
    }
    await this.server.stop(true);
    this.server = undefined;
    this.log.info("HTTP server stopped");
  }

  /** `http://HOST:PORT`, with the port in use (the configured one before start). */
  @exported
  async getUrl(): Promise<string> {
    return `http://${hostPort(await this.getHost(), await this.getPort())}`;
  }

  @exported
  async getHost(): Promise<string> {
    this.host ??= this.config.host ?? (await defaultHostAddress());
    return this.host;
  }

  @exported
  async getPort(): Promise<number> {
    return this.server?.port ?? this.config.port;
  }

  /** Writes the client's file as `name` under root_dir. */
  @exported
  async putFile(name: unknown, handle: unknown): Promise<void> {
    if (typeof name !== "string") throw new InvalidArgumentError(`put_file expects a file name, got ${JSON.stringify(name)}`);
    const data = await this.resource(this.requireArg(handle, "handle"));
    const path = await this.dir.write(name, data.readable);
    this.log.info(`stored ${path}`);
  }

  private async answer(request: Request): Promise<Response> {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("only GET and HEAD are served\n", { status: 405, headers: { Allow: "GET, HEAD" } });
    }
    let name: string;
    try {
      name = decodeURIComponent(new URL(request.url).pathname);
    } catch {
      return new Response("bad path\n", { status: 400 });
    }
    const file = await this.dir.fileFor(name);
    if (file === "outside") return new Response("forbidden\n", { status: 403 });
    if (file === "missing") return new Response("not found\n", { status: 404 });
    // No directory listings, as upstream.
    if (file === "not-a-file") return new Response("forbidden\n", { status: 403 });
    return new Response(Bun.file(file.path));
  }

  override async close(): Promise<void> {
    await this.server?.stop(true);
    this.server = undefined;
    if (this.config.remove_created_on_close) await this.dir.removeCreated();
  }
}
