/**
 * One console, many connections. The fan-out holds the only connection to the device
 * and reads it all the time, whether or not anyone is attached (so the output can be
 * recorded: src/exporter/console-capture.ts). Every attached connection reads the
 * same bytes in the same order. One connection at a time types: the first to write
 * holds the input until its connection ends, it closes its writing side, or it has
 * not typed for `inputIdleMs` (then the next to type takes it); a write from another
 * meanwhile fails with a message saying so (also told on its notices, for a client
 * across the wire), and that connection stays a reader. So a
 * forgotten console in another terminal does not lock everyone out.
 *
 * A connection attached with `take` takes the input at once, idle or not, and keeps
 * it until it ends, closes its writing side, or another takes it: the one that held
 * it is read-only from then on (for the rest of its connection) and is told so at
 * once, on its stream's notices (`j console pipe --take`).
 *
 * Output that arrives while nobody is attached is kept (the newest `idleKeepBytes`)
 * for the next connection, as a UART's buffer would: a client that connects after
 * power-on still sees the boot log.
 */
import { Notices, type ByteStream } from "./byte-stream.ts";

export interface FanoutOptions {
  /** Told every chunk the device prints, in order. */
  onOutput?: (bytes: Uint8Array) => void;
  /** Output kept while nobody is attached (default 64 KiB). */
  idleKeepBytes?: number;
  /** A connection this far behind the device is ended rather than let grow (default 8 MiB). */
  maxBehindBytes?: number;
  /** How long the input stays with a connection that has stopped typing (default 2 s). */
  inputIdleMs?: number;
}

interface Attached {
  controller: ReadableStreamDefaultController<Uint8Array>;
}

export interface AttachOptions {
  /** Take the input from whoever holds it (see above). */
  take?: boolean;
}

/** What a connection whose input was taken is told, and its writes fail with. */
export const TAKEN = "another connection took this console's input (--take): this one is read-only now; what you type here is not sent";

interface Typist {
  notices: Notices;
  /** Read-only for good: another connection took the input from it. */
  demoted: boolean;
}

export class ConsoleFanout {
  private readonly readers = new Set<Attached>();
  private readonly idle: Uint8Array[] = [];
  private idleBytes = 0;
  private readonly idleKeep: number;
  private readonly maxBehind: number;
  private readonly device: WritableStreamDefaultWriter<Uint8Array>;
  /** The connection that holds the input, if any. */
  private typist: Typist | undefined;
  /** The typist took the input (attach with `take`): it keeps it however long it is idle. */
  private taken = false;
  private typedAt = 0;
  private ended = false;
  /** Resolves when the device's output has ended (the driver closed it). */
  readonly done: Promise<void>;

  constructor(
    stream: ByteStream,
    private readonly opts: FanoutOptions = {},
  ) {
    this.idleKeep = opts.idleKeepBytes ?? 64 * 1024;
    this.maxBehind = opts.maxBehindBytes ?? 8 * 2 ** 20;
    this.device = stream.writable.getWriter();
    this.device.closed.catch(() => {});
    this.done = this.pump(stream.readable.getReader() as ReadableStreamDefaultReader<Uint8Array>);
  }

  /** Connections attached now. */
  get connections(): number {
    return this.readers.size;
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.byteLength === 0) continue;
        this.opts.onOutput?.(value);
        if (this.readers.size === 0) this.keepIdle(value);
        else for (const r of this.readers) this.deliver(r, value);
      }
    } catch {
      // The device went away: the same as its end, for the readers.
    } finally {
      this.end();
    }
  }

  private keepIdle(bytes: Uint8Array): void {
    this.idle.push(bytes);
    this.idleBytes += bytes.byteLength;
    while (this.idleBytes > this.idleKeep) {
      const first = this.idle[0]!;
      const over = this.idleBytes - this.idleKeep;
      if (first.byteLength <= over) {
        this.idle.shift();
        this.idleBytes -= first.byteLength;
      } else {
        this.idle[0] = first.subarray(over);
        this.idleBytes -= over;
      }
    }
  }

  private deliver(r: Attached, bytes: Uint8Array): void {
    // The queue counts bytes (see attach), so this is how far the reader is behind.
    const behind = -(r.controller.desiredSize ?? 0);
    if (behind + bytes.byteLength > this.maxBehind) {
      this.readers.delete(r);
      r.controller.error(new Error(`this connection fell more than ${this.maxBehind} bytes behind the console and was closed; connect again`));
      return;
    }
    r.controller.enqueue(bytes);
  }

  /** A new connection: the console's output from now on (after what was kept while nobody read), and its input while this one holds it. */
  attach(opts: AttachOptions = {}): ByteStream {
    const self: Typist = { notices: new Notices(), demoted: false };
    if (opts.take && !this.ended) this.take(self);
    let attached!: Attached;
    const readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        attached = { controller };
        for (const chunk of this.idle.splice(0)) controller.enqueue(chunk);
        this.idleBytes = 0;
        if (this.ended) controller.close();
        else this.readers.add(attached);
      },
      cancel: () => {
        this.readers.delete(attached);
        this.release(self);
      },
    }, { highWaterMark: 0, size: (chunk) => chunk?.byteLength ?? 0 });
    const writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (this.ended) throw new Error("the console has closed");
        if (self.demoted) throw new Error(TAKEN);
        const idle = !this.taken && performance.now() - this.typedAt >= (this.opts.inputIdleMs ?? 2_000);
        if (this.typist !== undefined && this.typist !== self && !idle) {
          // A refused write ends this connection's input for good (its writable errors): say so where its user sees it.
          const refused = "another connection is typing on this console: this one is read-only now (open the console again once that one stops, or with --take)";
          self.notices.tell(refused);
          throw new Error(refused);
        }
        if (this.typist !== self) this.taken = false;
        this.typist = self;
        this.typedAt = performance.now();
        await this.device.write(chunk);
      },
      close: () => this.release(self),
      abort: () => this.release(self),
    });
    return { readable, writable, notices: self.notices };
  }

  private take(who: Typist): void {
    const before = this.typist;
    this.typist = who;
    this.taken = true;
    this.typedAt = performance.now();
    if (!before || before === who) return;
    before.demoted = true;
    before.notices.tell(TAKEN);
    who.notices.tell("this connection took the console's input from another one, which is read-only now");
  }

  private release(who: Typist): void {
    if (this.typist !== who) return;
    this.typist = undefined;
    this.taken = false;
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const r of this.readers) {
      try {
        r.controller.close();
      } catch {
        // Already errored or cancelled.
      }
    }
    this.readers.clear();
  }

  /** Ends the device's input (its output ends with the driver). */
  async close(): Promise<void> {
    await this.device.close().catch(() => {});
  }
}
