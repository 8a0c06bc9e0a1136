/**
 * The network drivers, as upstream's jumpstarter_driver_network: each exports a
 * `connect` byte stream to an endpoint reachable from the exporter, and the TCP
 * and UDP ones an `address()` for clients that can reach the endpoint directly.
 */
import type { EventEmitter } from "node:events";
import {
  type ByteStream, config, type ConfigOf, Driver, exported, exportStream, InvalidArgumentError,
  NotImplementedDriverError,
} from "@jumpstarter/driver";
import { connectSocket, hostPort, resolveHost, socketStream } from "./connect.ts";
import { closeDatagramSocket, connectDatagramSocket, datagramByteStream } from "./datagram.ts";
import { NETWORK_CLIENT } from "./clients.ts";

export { NETWORK_CLIENT };

const ADDRESS_HELP = "The endpoint's address (scheme://host:port) for clients that can reach it directly";

/** Every network driver extends this; `connect` is the contract. */
export abstract class NetworkInterface<C = Record<string, unknown>> extends Driver<C> {
  static override readonly client: string = NETWORK_CLIENT;
  static override readonly driverType: string = "network";
  static override readonly help: Record<string, string> = { connect: "Open a byte stream to the endpoint" };

  /** Connections still open, torn down when the session ends. */
  private readonly open = new Set<() => void>();

  @exportStream
  async connect(): Promise<ByteStream> {
    throw new NotImplementedDriverError(`${this.constructor.name} does not implement connect`);
  }

  protected track(handle: EventEmitter, destroy: () => void): void {
    this.open.add(destroy);
    handle.once("close", () => this.open.delete(destroy));
  }

  override async close(): Promise<void> {
    for (const destroy of this.open) destroy();
    this.open.clear();
  }
}

const endpointShape = {
  host: config.string({ nonEmpty: true, description: "host name or IP address, as seen from the exporter" }),
  port: config.number({ integer: true, min: 1, max: 65535, description: "port number" }),
  enable_address: config.withDefault(
    config.boolean({ description: "whether address() tells clients the endpoint, for direct connections" }),
    true,
  ),
};

async function addressOf(scheme: string, c: ConfigOf<typeof endpointShape>): Promise<string> {
  if (!c.enable_address) throw new InvalidArgumentError("enable_address mode is not true in the exporter configuration");
  return `${scheme}://${hostPort(await resolveHost(c.host), c.port)}`;
}

const tcpShape = {
  ...endpointShape,
  connect_timeout: config.withDefault(
    config.number({ min: 0.001, description: "seconds to wait for the TCP handshake (jmp addition)" }),
    10,
  ),
};

/** A TCP connection per stream, opened from the exporter. */
export class TcpNetwork extends NetworkInterface<ConfigOf<typeof tcpShape>> {
  static override readonly configShape = tcpShape;
  static override readonly summary = "a TCP endpoint reachable from the exporter (connect, address)";
  static override readonly help = { ...NetworkInterface.help, address: ADDRESS_HELP };

  override async connect(): Promise<ByteStream> {
    const { host, port, connect_timeout } = this.config;
    const what = hostPort(host, port);
    this.log.debug(`connecting to ${what}`);
    const socket = await connectSocket({ host, port }, what, connect_timeout * 1000);
    this.track(socket, () => socket.destroy());
    return socketStream(socket, what);
  }

  /** `tcp://host:port`, the host resolved to an address. */
  @exported
  async address(): Promise<string> {
    return addressOf("tcp", this.config);
  }
}

/**
 * A connected UDP socket per stream. Each chunk written is one datagram sent; each
 * datagram received is one chunk read. Closing the writable side sends nothing
 * (UDP has no FIN): replies keep arriving until the stream is cancelled.
 */
export class UdpNetwork extends NetworkInterface<ConfigOf<typeof endpointShape>> {
  static override readonly configShape = endpointShape;
  static override readonly summary = "a UDP endpoint reachable from the exporter, one datagram per chunk";
  static override readonly help = { ...NetworkInterface.help, address: ADDRESS_HELP };

  override async connect(): Promise<ByteStream> {
    const { host, port } = this.config;
    const what = hostPort(host, port);
    this.log.debug(`connecting UDP to ${what}`);
    const socket = await connectDatagramSocket(host, port, what);
    this.track(socket, () => closeDatagramSocket(socket));
    let warned = false;
    return datagramByteStream(socket, what, () => {
      if (warned) return;
      warned = true;
      this.log.warn(`dropping datagrams from ${what}: the client reads them too slowly`);
    });
  }

  /** `udp://host:port`, the host resolved to an address. */
  @exported
  async address(): Promise<string> {
    return addressOf("udp", this.config);
  }
}

const unixShape = { path: config.string({ nonEmpty: true, description: "path of the Unix domain socket" }) };

/** A Unix domain socket connection per stream, opened on the exporter host. */
export class UnixNetwork extends NetworkInterface<ConfigOf<typeof unixShape>> {
  static override readonly configShape = unixShape;
  static override readonly summary = "a Unix domain socket on the exporter host (connect)";

  override async connect(): Promise<ByteStream> {
    const { path } = this.config;
    const what = `unix socket ${path}`;
    this.log.debug(`connecting to ${what}`);
    const socket = await connectSocket({ path }, what);
    this.track(socket, () => socket.destroy());
    return socketStream(socket, what);
  }
}

/** Sends every byte straight back: a network endpoint for tests and demos. */
export class EchoNetwork extends NetworkInterface {
  static override readonly summary = "echoes every byte back (for tests and demos)";

  override async connect(): Promise<ByteStream> {
    this.log.debug("connecting to echo");
    // Closing the writable side ends the readable side once the echo is read.
    const loop = new TransformStream<Uint8Array, Uint8Array>({}, { highWaterMark: 32 }, { highWaterMark: 32 });
    return { readable: loop.readable, writable: loop.writable };
  }
}
