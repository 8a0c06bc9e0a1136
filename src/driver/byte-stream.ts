/**
 * A byte stream is what an `@exportStream` method returns and what a client gets
 * back for it: two web streams, one each way, plus optional metadata that the
 * client receives as the stream's initial headers.
 */
import type { Socket } from "node:net";

export interface ByteStream {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  metadata?: Record<string, string>;
  /**
   * Messages for the person behind this end, out of band from the bytes (a console
   * saying another connection took its input). They travel as PING frames with a
   * payload, which peers that do not know them ignore, as they ignore every PING.
   */
  notices?: Notices;
  /**
   * The writable is a socket, where every write is a syscall: a sender holding a
   * message in pieces should write it whole (see session-stream.ts).
   */
  gatherWrites?: boolean;
  /**
   * Given by a source that lends its chunks (a file the session reads itself): a
   * consumer done with a chunk of the readable (no write of it pending, no view of
   * it kept) may hand it back, and a later read fills it again instead of new
   * memory, whose pages the kernel must fault in. A consumer that never does is
   * just as correct.
   */
  recycle?: (chunk: Uint8Array) => void;
}

/**
 * A one-way channel of short texts: the driver's side tells, the client's side
 * listens. Told before anyone listens (a stream's first notice can come before the
 * stream is served), the newest few wait for the first listener.
 */
export class Notices {
  private readonly listeners = new Set<(text: string) => void>();
  private readonly waiting: string[] = [];

  /** Calls `fn` with each notice from now on (and those waiting); returns what stops it. */
  listen(fn: (text: string) => void): () => void {
    this.listeners.add(fn);
    for (const text of this.waiting.splice(0)) fn(text);
    return () => this.listeners.delete(fn);
  }

  tell(text: string): void {
    if (this.listeners.size === 0) {
      this.waiting.push(text);
      if (this.waiting.length > 8) this.waiting.shift();
    }
    for (const fn of this.listeners) fn(text);
  }
}

/**
 * Wraps a socket (TCP, Unix, pty) as a ByteStream with backpressure both ways.
 * Closing the writable half-closes the socket (FIN); cancelling the readable
 * destroys it. `mapError` turns a socket error into what the reader should see
 * (e.g. an UnavailableError naming the peer).
 */
export function socketByteStream(
  socket: Socket,
  opts: { metadata?: Record<string, string>; mapError?: (e: Error) => Error } = {},
): ByteStream {
  // Bun emits 'end' even after destroy(): settle the readable once only.
  let settled = false;
  const settle = (finish: () => void) => {
    if (settled) return;
    settled = true;
    finish();
  };
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Buffer) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) socket.pause();
      });
      socket.on("end", () => settle(() => controller.close()));
      socket.on("close", () => settle(() => controller.close()));
      socket.on("error", (e) => settle(() => controller.error(opts.mapError ? opts.mapError(e) : e)));
    },
    pull() {
      socket.resume();
    },
    cancel() {
      settled = true;
      socket.destroy();
    },
  }, { highWaterMark: 4 });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        if (socket.destroyed) return reject(Object.assign(new Error("socket closed"), { code: "EPIPE" }));
        socket.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (socket.destroyed || socket.writableEnded) return resolve();
        socket.end(() => resolve());
      });
    },
    abort() {
      socket.destroy();
    },
  });
  return { readable, writable, metadata: opts.metadata, gatherWrites: true };
}

/** Two connected ends: what is written to one is read from the other. */
export function memoryPipe(bufferBytes = 0): [ByteStream, ByteStream] {
  const ab = new TransformStream<Uint8Array, Uint8Array>({}, bufferBytes > 0 ? new ByteLengthQueuingStrategy({ highWaterMark: bufferBytes }) : undefined);
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  return [
    { readable: ba.readable, writable: ab.writable },
    { readable: ab.readable, writable: ba.writable },
  ];
}

/**
 * Copies a → b and b → a until both directions have ended. The end of one
 * direction is passed on as a half-close; an error on either side tears down both.
 */
export async function pipeBoth(a: ByteStream, b: ByteStream): Promise<void> {
  const abort = new AbortController();
  const copy = (from: ReadableStream<Uint8Array>, to: WritableStream<Uint8Array>) =>
    from.pipeTo(to, { signal: abort.signal }).catch((err) => {
      abort.abort(err);
      throw err;
    });
  await Promise.all([copy(a.readable, b.writable), copy(b.readable, a.writable)]);
}

/** Reads a whole stream into one buffer (for small payloads and tests). */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
