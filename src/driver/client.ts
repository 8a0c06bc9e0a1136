/**
 * The client side of a driver: a DriverClient talks to one driver instance through
 * a Portal (the connection to the exporter session). Client classes for specific
 * interfaces (power, serial, …) extend it with typed methods and a `j` command tree.
 */
import type { CommandDef } from "citty";
import type { ByteStream } from "./byte-stream.ts";
import { NAME_LABEL } from "./report.ts";
import type { ResourceHandle } from "./resource.ts";

/** Options for {@link DriverClient.resource}. */
export interface ResourceOptions {
  /** The content encoding of the data as given (e.g. a `.gz` file): "gzip". */
  encoding?: string;
  /** Called as bytes go out (total may be undefined when unknown). */
  onProgress?: (sent: number) => void;
}

/** One connection to an exporter session, shared by every client of the tree. */
export interface Portal {
  call(uuid: string, method: string, args: unknown[]): Promise<unknown>;
  streamingCall(uuid: string, method: string, args: unknown[], signal?: AbortSignal): AsyncIterable<unknown>;
  /** Opens a byte stream; `request` is upstream's `request` metadata object. */
  openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream>;
}

export interface ClientInit {
  uuid: string;
  labels: Record<string, string>;
  portal: Portal;
  children: Record<string, DriverClient>;
  description?: string;
  methodsDescription: Record<string, string>;
}

export class DriverClient {
  readonly uuid: string;
  readonly labels: Record<string, string>;
  readonly children: Record<string, DriverClient>;
  readonly description?: string;
  readonly methodsDescription: Record<string, string>;
  protected readonly portal: Portal;

  constructor(init: ClientInit) {
    this.uuid = init.uuid;
    this.labels = init.labels;
    this.portal = init.portal;
    this.children = init.children;
    this.description = init.description;
    this.methodsDescription = init.methodsDescription;
  }

  /** The name of this driver in its parent (`power`, `console`, …); the root has none. */
  get name(): string | undefined {
    return this.labels[NAME_LABEL];
  }

  /** A unary call: `await client.call("on")`. */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    return this.portal.call(this.uuid, method, args) as Promise<T>;
  }

  /** A server-streaming call; stop early with `break` or the signal. */
  streamingCall<T = unknown>(method: string, ...args: unknown[]): AsyncIterable<T> {
    return this.portal.streamingCall(this.uuid, method, args) as AsyncIterable<T>;
  }

  /** Opens the driver's byte stream (`connect` by default). */
  stream(method = "connect", signal?: AbortSignal): Promise<ByteStream> {
    return this.portal.openStream({ kind: "driver", uuid: this.uuid, method }, signal);
  }

  /**
   * Streams data to the exporter and resolves to the handle to pass to a call, e.g.
   * `await storage.call("write", await storage.resource(file))`. The upload runs while
   * the call consumes it; `done` settles when every byte has left.
   */
  async resource(
    data: ReadableStream<Uint8Array>,
    options: ResourceOptions = {},
  ): Promise<{ handle: ResourceHandle; stream: ByteStream; done: Promise<void> }> {
    const stream = await this.portal.openStream({
      kind: "resource",
      uuid: this.uuid,
      x_jmp_content_encoding: options.encoding ?? null,
    });
    const meta = stream.metadata ?? {};
    let handle: ResourceHandle;
    try {
      handle = JSON.parse(meta.resource ?? "") as ResourceHandle;
    } catch {
      throw new Error("the exporter did not return a resource handle");
    }
    let source = data;
    if (options.encoding && !meta.x_jmp_accept_encoding) {
      if (options.encoding !== "gzip") throw new Error(`cannot decompress '${options.encoding}' here and the exporter will not`);
      source = data.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>);
    }
    let sent = 0;
    const counted = options.onProgress
      ? source.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, c) {
            sent += chunk.byteLength;
            options.onProgress!(sent);
            c.enqueue(chunk);
          },
        }))
      : source;
    const done = counted.pipeTo(stream.writable);
    done.catch(() => {});
    return { handle, stream, done };
  }

  /** A child by name, checked against the class you expect. */
  child<T extends DriverClient>(name: string, cls?: abstract new (init: ClientInit) => T): T {
    const c = this.children[name];
    if (!c) throw new Error(`no driver '${name}' here (children: ${Object.keys(this.children).join(", ") || "none"})`);
    if (cls && !(c instanceof cls)) throw new Error(`driver '${name}' is a ${c.constructor.name}, not a ${cls.name}`);
    return c as T;
  }

  /** The `j` command for this driver; clients of specific interfaces override it. */
  cli(): CommandDef<any> | undefined {
    return undefined;
  }

  /** The help text of a method: the exporter's `methods_description` wins. */
  help(method: string, fallback: string): string {
    return this.methodsDescription[method] ?? fallback;
  }
}
