/** Client of the network drivers: `j <name> forward-tcp|forward-unix|address`. */
import { type ByteStream, defineCommand, DriverClient, InvalidArgumentError, MethodNotFoundError, UnavailableError } from "@jumpstarter/driver";
// forward.ts loads node:net: only a forward needs it, not every `j` command.
import type { Forward } from "./forward.ts";

export class NetworkClient extends DriverClient {
  /** The endpoint's address (`tcp://host:port`), when the exporter allows direct connections. */
  address(): Promise<string> {
    return this.call<string>("address");
  }

  /** A byte stream to the endpoint, through the exporter. */
  connect(): Promise<ByteStream> {
    return this.stream("connect");
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "Generic network connection" },
      subCommands: {
        "forward-tcp": defineCommand({
          meta: { description: "Forward a local TCP port to the endpoint (every connection gets its own stream)" },
          args: {
            port: { type: "positional", required: false, default: "0", description: "TCP port to listen on (0: a free one)" },
            // --address is upstream's name for the same option.
            host: { type: "string", alias: ["address"], default: "127.0.0.1", description: "local address to listen on" },
          },
          run: async ({ args }) => {
            await forwardUntilInterrupted(await (await import("./forward.ts")).forwardTcp(this, { host: args.host, port: parsePort(args.port ?? "0"), onError: printError }), this.portal.gone);
          },
        }),
        "forward-unix": defineCommand({
          meta: { description: "Forward a local Unix domain socket to the endpoint" },
          args: {
            path: { type: "positional", required: false, description: "socket path to listen on (default: a new temporary one)" },
          },
          run: async ({ args }) => {
            await forwardUntilInterrupted(await (await import("./forward.ts")).forwardUnix(this, { path: args.path || undefined, onError: printError }), this.portal.gone);
          },
        }),
        address: defineCommand({
          meta: { description: this.help("address", "Print the endpoint's address, for direct connections") },
          args: {
            host: { type: "boolean", description: "print only the host" },
            port: { type: "boolean", description: "print only the port" },
          },
          run: async ({ args }) => console.log(pickAddressPart(await this.directAddress(), args.host === true, args.port === true)),
        }),
      },
    });
  }

  private async directAddress(): Promise<string> {
    try {
      return await this.address();
    } catch (e) {
      if (e instanceof MethodNotFoundError) {
        throw new MethodNotFoundError(
          `this driver offers no direct address (${e.message}); use forward-tcp or forward-unix instead`,
          { cause: e },
        );
      }
      throw e;
    }
  }
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new InvalidArgumentError(`PORT must be a TCP port from 0 to 65535, got '${text}'`);
  return port;
}

function printError(e: Error): void {
  console.error(`forwarded connection failed: ${e.message}`);
}

/**
 * Prints where we listen (for scripts to read), then serves until Ctrl-C or SIGTERM,
 * or until the connection to the exporter is gone (`gone`: the shell that ran this
 * ended, the exporter died), which fails the command: a forward left in the
 * background must not outlive its session, holding a port that leads nowhere.
 */
async function forwardUntilInterrupted(forward: Forward, gone?: Promise<Error>): Promise<void> {
  console.log(forward.address);
  let stop!: () => void;
  const interrupted = new Promise<void>((resolve) => {
    stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  const lost = await Promise.race([interrupted.then(() => undefined), gone ?? new Promise<never>(() => {})]);
  stop();
  await forward.close();
  if (lost) throw new UnavailableError(`${lost.message}: stopped forwarding ${forward.address}`);
}

/** As upstream: `host:port` without the scheme, or just the host (no brackets) or the port. */
function pickAddressPart(address: string, host: boolean, port: boolean): string {
  const url = new URL(address.includes("://") ? address : `tcp://${address}`);
  if (host === port) return url.host;
  return host ? url.hostname.replace(/^\[(.*)\]$/, "$1") : url.port;
}
