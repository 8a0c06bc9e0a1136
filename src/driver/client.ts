/**
 * The client side of a driver: a DriverClient talks to one driver instance through
 * a Portal (the connection to the exporter session). Client classes for specific
 * interfaces (power, serial, …) extend it with typed methods and a `j` command tree.
 */
import { statSync } from "node:fs";
import type { CommandDef } from "citty";
import type { ByteStream } from "./byte-stream.ts";
import { NAME_LABEL } from "./labels.ts";
import { CODECS, decode, detectEncoding, encoder, peek } from "./encoding.ts";
import { InvalidArgumentError } from "./errors.ts";
import { type ProgressOptions, TransferProgress } from "./progress-stream.ts";
import { bytesRead, type ResourceHandle, TRANSIT_ENCODING } from "./resource.ts";
import { transitPacker } from "./transit-pack.ts";
import { unpackTransit } from "./transit-unpack.ts";

/** Options for {@link DriverClient.resource}. */
export interface ResourceOptions {
  /**
   * The content encoding of `data` as given ("gzip", "zstd", "xz", "bz2"), or "auto"
   * to recognise it by its first bytes. With `into`: the encoding to store it in.
   */
  encoding?: string;
  /** Called with the running count of bytes taken from `data`, or else put into `into`. */
  onProgress?: (bytes: number) => void;
  /** Where the bytes the driver writes to the resource go (a dump); ignored without it. */
  into?: WritableStream<Uint8Array>;
  /** Ends the transfer both ways. */
  signal?: AbortSignal;
  /**
   * Shows progress on stderr while bytes move (counted as for `onProgress`); end it
   * with the transfer's `finish()`.
   */
  progress?: ProgressOptions;
  /**
   * `data` is this file of this machine (an absolute path): a session that may read
   * it itself (local mode) does, and `data` is not sent (see `readByExporter`). With
   * `into` instead: the new, empty file `into` writes to; a session that may write it
   * itself does, and nothing reaches `into` (see `writtenByExporter`).
   */
  localFile?: string;
  /**
   * Compress raw data (no `encoding`) on the way, where the exporter agrees (see
   * TRANSIT_ENCODING and `transit`). `data`: offered only if set, so set it only for
   * data that compresses well; compressing what does not costs CPU at both ends and
   * saves nothing. `into`: the exporter compresses only the pieces that shrink.
   */
  transit?: boolean;
}

/** A resource in flight: pass `handle` to a driver call. */
export interface ResourceTransfer {
  handle: ResourceHandle;
  stream: ByteStream;
  /** The encoding announced to the exporter (after "auto" recognised one). */
  encoding?: string;
  /** Who undoes (or, for `into`, applies) that encoding. */
  codedBy?: "exporter" | "client";
  /** The exporter read `localFile` itself: no bytes of `data` were counted or sent. */
  readByExporter: boolean;
  /** The exporter wrote `localFile` itself, whole and synced once `done`: `into` got nothing and is left as it was. */
  writtenByExporter: boolean;
  /**
   * Set when raw data went compressed on the way (see TRANSIT_ENCODING): `bytes`, the
   * data itself (taken from `data`, put into `into`), and `compressed`, what crossed
   * the network for it. Sent so, `data` is undone by the exporter before its driver
   * reads it, and progress follows what the driver has read, as this side reads far ahead.
   */
  transit?: { bytes(): number; compressed(): number };
  /** Settles when every byte of `data` has left and every byte for `into` has arrived. */
  done: Promise<void>;
  /**
   * Ends the progress display with one summary line (size, time, rate, then `detail`).
   * Call it when the driver call returned, so the time includes the driver's work.
   */
  finish(detail?: string): void;
  /** Ends the stream both ways (and the progress display): after the call returned, or to give up. */
  close(): void;
}

/** Frames stay well below the 4 MiB message limit of upstream's gRPC servers. */
const MAX_FRAME = 256 * 1024;

/** Bytes read ahead of what HTTP/2 has taken (see splitFrames). */
const SEND_AHEAD = 2 * 2 ** 20;

/** One connection to an exporter session, shared by every client of the tree. */
export interface Portal {
  call(uuid: string, method: string, args: unknown[]): Promise<unknown>;
  streamingCall(uuid: string, method: string, args: unknown[], signal?: AbortSignal): AsyncIterable<unknown>;
  /** Opens a byte stream; `request` is upstream's `request` metadata object. */
  openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream>;
  /**
   * Settles, with why, once the connection to the exporter is gone for good (the
   * shell ended, the exporter died): for commands that otherwise wait on something
   * else, as a forward waits for its local connections. Absent where the portal
   * reconnects by itself.
   */
  readonly gone?: Promise<Error>;
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

  /** Opens the driver's byte stream (`connect` by default); `extra` joins the stream request (our own keys start with `x_jmp_`). */
  stream(method = "connect", signal?: AbortSignal, extra: Record<string, unknown> = {}): Promise<ByteStream> {
    return this.portal.openStream({ ...extra, kind: "driver", uuid: this.uuid, method }, signal);
  }

  /**
   * Streams data to the exporter (and, with `into`, back) and resolves to the handle
   * to pass to a call: `await storage.call("write", (await storage.resource(file)).handle)`.
   * The transfer runs while the call consumes it. With an encoding, the exporter
   * decodes if it says it will (`x_jmp_accept_encoding`), otherwise this process does.
   */
  async resource(data: ReadableStream<Uint8Array> | null, options: ResourceOptions = {}): Promise<ResourceTransfer> {
    const abort = new AbortController();
    options.signal?.addEventListener("abort", () => abort.abort(options.signal?.reason), { once: true });
    let source = data;
    let encoding = options.encoding;
    if (encoding === "auto") {
      encoding = undefined;
      if (source) {
        const [head, whole] = await peek(source);
        source = whole;
        encoding = detectEncoding(head);
      }
    }
    let stream: ByteStream;
    let handle: ResourceHandle;
    let codedBy: ResourceTransfer["codedBy"];
    // Compressed data would not shrink again; a dump sends nothing, and takes what comes.
    const offerTransit = options.transit === true && source !== null && encoding === undefined;
    const acceptTransit = options.transit === true && options.into !== undefined && encoding === undefined;
    try {
      const local = !options.localFile ? {} : options.into ? localTargetRequest(options.localFile) : localFileRequest(options.localFile);
      const transit = {
        ...(offerTransit ? { x_jmp_transit_encoding: TRANSIT_ENCODING } : {}),
        ...(acceptTransit ? { x_jmp_transit_accept_encoding: TRANSIT_ENCODING } : {}),
      };
      stream = await this.portal.openStream(
        { kind: "resource", uuid: this.uuid, x_jmp_content_encoding: encoding ?? null, ...local, ...transit },
        abort.signal,
      );
      const meta = stream.metadata ?? {};
      try {
        handle = JSON.parse(meta.resource ?? "") as ResourceHandle;
      } catch {
        throw new Error("the exporter did not return a resource handle");
      }
      codedBy = encoding === undefined ? undefined : meta.x_jmp_accept_encoding ? "exporter" : "client";
      if (codedBy === "client" && !CODECS.has(encoding!)) {
        const advice = source ? "decompress it first" : `use ${[...CODECS].join(" or ")}`;
        throw new InvalidArgumentError(`the exporter does not handle ${encoding} data and this client cannot either: ${advice}`);
      }
    } catch (e) {
      abort.abort();
      await source?.cancel().catch(() => {});
      throw e;
    }
    const readByExporter = options.localFile !== undefined && stream.metadata?.x_jmp_local_file === "read";
    const writtenByExporter = options.localFile !== undefined && options.into !== undefined && stream.metadata?.x_jmp_local_target === "written";
    const inTransit = offerTransit && !readByExporter && stream.metadata?.x_jmp_transit_encoding === TRANSIT_ENCODING;
    const backInTransit = acceptTransit && stream.metadata?.x_jmp_transit_accept_encoding === TRANSIT_ENCODING;
    if (readByExporter) {
      // Nothing to send: the exporter reads the file; the call returns when it has.
      await source?.cancel().catch(() => {});
      source = null;
    }
    const progress = options.progress ? new TransferProgress(options.progress) : undefined;
    const close = () => {
      progress?.stop();
      abort.abort();
    };
    const report = (bytes: number) => {
      progress?.update(bytes);
      options.onProgress?.(bytes);
    };
    const count = options.onProgress || progress ? counter(report) : undefined;
    // The exporter says how far its driver has read when it reads the file itself
    // (exporter/local-file.ts), how far it has written when it writes the file itself
    // (exporter/local-target.ts), and when the data comes compressed, as this side
    // then reads far ahead of what the driver has taken (exporter/transit.ts).
    const countedThere = readByExporter || inTransit || writtenByExporter;
    if (countedThere && count) {
      stream.notices?.listen((text) => {
        const read = bytesRead(text);
        if (read !== undefined) report(read);
      });
    }
    let outgoing: Promise<void>;
    // What went compressed on the way: the data itself, and the bytes that crossed for it.
    let plainBytes = 0;
    let wireBytes = 0;
    if (source) {
      let sent = count && !countedThere ? source.pipeThrough(count) : source;
      if (codedBy === "client") sent = decode(sent, encoding!);
      if (inTransit) {
        sent = sent.pipeThrough(counter((n) => (plainBytes = n))).pipeThrough(transitPacker()).pipeThrough(counter((n) => (wireBytes = n)));
      }
      outgoing = sent.pipeThrough(splitFrames()).pipeTo(stream.writable, { signal: abort.signal });
    } else {
      outgoing = stream.writable.close();
    }
    let incoming = Promise.resolve();
    if (options.into && writtenByExporter) {
      // Nothing arrives: the session writes the file, and ends the stream once it is whole.
      incoming = stream.readable.pipeTo(new WritableStream(), { signal: abort.signal });
    } else if (options.into) {
      let received = stream.readable;
      if (backInTransit) {
        received = unpackTransit(received.pipeThrough(counter((n) => (wireBytes = n)))).pipeThrough(counter((n) => (plainBytes = n)));
      }
      if (codedBy === "client") received = received.pipeThrough(encoder(encoding!));
      if (count && !source) received = received.pipeThrough(count);
      incoming = received.pipeTo(options.into, { signal: abort.signal });
    }
    const done = Promise.all([outgoing, incoming]).then(() => {});
    done.catch(() => {});
    const finish = (detail?: string) => {
      if (readByExporter && options.progress?.total !== undefined) progress?.update(options.progress.total);
      // The driver has read it all once the call returned, whichever notice came last.
      if (inTransit) report(plainBytes);
      progress?.finish(detail);
    };
    return { handle, stream, encoding, codedBy, readByExporter, writtenByExporter, transit: inTransit || backInTransit ? { bytes: () => plainBytes, compressed: () => wireBytes } : undefined, done, finish, close };
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

/**
 * The request keys that offer `path` to a session that reads local files: its path,
 * and its size and modification time, which the session checks, so that a client in
 * another mount namespace (a container) never has the session read another file that
 * happens to have the same path. Nothing when the file cannot be stat'ed here.
 */
function localFileRequest(path: string): Record<string, string> {
  try {
    const stat = statSync(path);
    return stat.isFile() ? { x_jmp_local_file: path, x_jmp_local_file_id: `${stat.size}:${stat.mtimeMs}` } : {};
  } catch {
    return {};
  }
}

/**
 * The request keys that offer `path`, a new empty file, to a session that writes local
 * files, with its device and inode, which the session checks (see localFileRequest).
 */
function localTargetRequest(path: string): Record<string, string> {
  try {
    const stat = statSync(path);
    return stat.isFile() && stat.size === 0 ? { x_jmp_local_target: path, x_jmp_local_target_id: `${stat.dev}:${stat.ino}` } : {};
  } catch {
    return {};
  }
}

function counter(report: (bytes: number) => void): TransformStream<Uint8Array, Uint8Array> {
  let bytes = 0;
  return new TransformStream({
    transform(chunk, controller) {
      bytes += chunk.byteLength;
      report(bytes);
      controller.enqueue(chunk);
    },
  });
}

/**
 * Splits what is sent into frames, and keeps up to SEND_AHEAD bytes of them
 * ready: the source (a file) is read while earlier frames are still going out,
 * instead of only once HTTP/2 has taken the last one.
 */
function splitFrames(): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let at = 0; at < chunk.byteLength; at += MAX_FRAME) controller.enqueue(chunk.subarray(at, at + MAX_FRAME));
    },
  }, undefined, new ByteLengthQueuingStrategy({ highWaterMark: SEND_AHEAD }));
}
