/** Client of the HTTP server (upstream's HttpServerClient): `j http start|stop|url|put`. */
import { defineCommand, DriverClient } from "@jumpstarter/driver";
import { putFile } from "./upload.ts";

export class HttpServerClient extends DriverClient {
  /** Starts serving (the server does not run until asked). */
  async start(): Promise<void> {
    await this.call("start");
  }

  async stop(): Promise<void> {
    await this.call("stop");
  }

  /** The base URL, e.g. `http://192.168.1.10:8080`. */
  getUrl(): Promise<string> {
    return this.call<string>("get_url");
  }

  getHost(): Promise<string> {
    return this.call<string>("get_host");
  }

  async getPort(): Promise<number> {
    return Number(await this.call("get_port"));
  }

  /** Uploads a local file (or a stream) into the served directory as `dst`; returns its URL. */
  async putFile(src: string | ReadableStream<Uint8Array>, dst?: string): Promise<string> {
    const name = await putFile(this, src, dst);
    return `${await this.getUrl()}/${name.split("/").filter(Boolean).map(encodeURIComponent).join("/")}`;
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "HTTP server" },
      subCommands: {
        start: defineCommand({ meta: { description: this.help("start", "Start the HTTP server") }, run: () => this.start() }),
        stop: defineCommand({ meta: { description: this.help("stop", "Stop the HTTP server") }, run: () => this.stop() }),
        url: defineCommand({
          meta: { description: this.help("get_url", "Print the base URL of the server") },
          run: async () => console.log(await this.getUrl()),
        }),
        put: defineCommand({
          meta: { description: "Upload a file into the served directory and print its URL" },
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
