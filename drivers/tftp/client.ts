/** Client of the TFTP server (upstream's TftpServerClient): `j tftp start|stop|address|put`. */
import { defineCommand, DriverClient } from "@jumpstarter/driver";
import { hostPort } from "../network/host-port.ts";
import { putFile } from "../http/upload.ts";

export class TftpServerClient extends DriverClient {
  /** Starts serving (the server does not run until asked). */
  async start(): Promise<void> {
    await this.call("start");
  }

  async stop(): Promise<void> {
    await this.call("stop");
  }

  /** The address the server listens on, as a board should use it. */
  getHost(): Promise<string> {
    return this.call<string>("get_host");
  }

  async getPort(): Promise<number> {
    return Number(await this.call("get_port"));
  }

  /** Uploads a local file (or a stream) into the served directory as `dst`; returns the name stored. */
  putFile(src: string | ReadableStream<Uint8Array>, dst?: string): Promise<string> {
    return putFile(this, src, dst);
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "TFTP server" },
      subCommands: {
        start: defineCommand({ meta: { description: this.help("start", "Start the TFTP server") }, run: () => this.start() }),
        stop: defineCommand({ meta: { description: this.help("stop", "Stop the TFTP server") }, run: () => this.stop() }),
        address: defineCommand({
          meta: { description: "Print the address and port the server listens on (HOST:PORT)" },
          run: async () => console.log(hostPort(await this.getHost(), await this.getPort())),
        }),
        put: defineCommand({
          meta: { description: this.help("put_file", "Upload a file into the served directory") },
          args: {
            file: { type: "positional", required: true, description: "the local file" },
            name: { type: "positional", required: false, description: "the name on the server (default: the file's name)" },
          },
          run: async ({ args }) => console.log(await this.putFile(args.file, args.name)),
        }),
      },
    });
  }
}
