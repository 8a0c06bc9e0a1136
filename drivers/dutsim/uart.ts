/**
 * The board's serial port as the host sees it. Every open connection receives all
 * output from the moment it connects (several readers can share the console, as
 * with ser2net); with none open, output waits in a bounded FIFO for the next
 * connection, so `j power on` now and `j console expect "login:"` later sees the boot.
 */
import type { ByteStream } from "@jumpstarter/driver";

/** Bytes in arrival order, at most `limit` of them: the oldest are dropped first. */
export class ByteFifo {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  constructor(readonly limit: number) {}

  get size(): number {
    return this.bytes;
  }

  push(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    const kept = data.byteLength > this.limit ? data.subarray(data.byteLength - this.limit) : data;
    this.chunks.push(kept.slice());
    this.bytes += kept.byteLength;
    while (this.bytes > this.limit) {
      const first = this.chunks[0]!;
      const excess = this.bytes - this.limit;
      if (first.byteLength <= excess) {
        this.chunks.shift();
        this.bytes -= first.byteLength;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.bytes -= excess;
      }
    }
  }

  /** Everything held, as one buffer; the FIFO is empty afterwards. */
  takeAll(): Uint8Array {
    const out = new Uint8Array(this.bytes);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    this.chunks = [];
    this.bytes = 0;
    return out;
  }
}

interface Connection {
  queue: ByteFifo;
  wake?: () => void;
  /** Set when the client went away or the port was shut; the stream ends. */
  done: boolean;
}

export class Uart {
  private readonly backlog: ByteFifo;
  private readonly connections = new Set<Connection>();

  /** `limit` bounds the unread output kept for each reader and while nobody reads. */
  constructor(readonly limit: number) {
    this.backlog = new ByteFifo(limit);
  }

  /** Bytes waiting for the next connection. */
  get pending(): number {
    return this.backlog.size;
  }

  get readers(): number {
    return this.connections.size;
  }

  /** Output from the board. */
  transmit(data: Uint8Array): void {
    if (this.connections.size === 0) {
      this.backlog.push(data);
      return;
    }
    for (const c of this.connections) {
      c.queue.push(data);
      c.wake?.();
    }
  }

  /**
   * A new connection: it first receives what waited in the backlog, then all new
   * output. What it writes goes to `receive` (the board's keyboard input).
   */
  connect(receive: (data: Uint8Array) => void): ByteStream {
    const conn: Connection = { queue: new ByteFifo(this.limit), done: false };
    conn.queue.push(this.backlog.takeAll());
    this.connections.add(conn);
    const readable = new ReadableStream<Uint8Array>({
      // Bytes leave the queue only when the client asks for more, so output the
      // client never read is still here when it disconnects.
      pull: async (controller) => {
        while (conn.queue.size === 0 && !conn.done) await new Promise<void>((r) => (conn.wake = r));
        conn.wake = undefined;
        if (!this.connections.has(conn)) return;
        if (conn.queue.size > 0) {
          controller.enqueue(conn.queue.takeAll());
        } else {
          this.connections.delete(conn);
          controller.close();
        }
      },
      cancel: () => this.disconnect(conn),
    }, { highWaterMark: 0 });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!conn.done) receive(chunk);
      },
    });
    return { readable, writable };
  }

  /** Ends every connection (their clients see the end of the stream). */
  closeAll(): void {
    for (const c of this.connections) {
      c.done = true;
      c.wake?.();
    }
  }

  private disconnect(conn: Connection): void {
    conn.done = true;
    conn.wake?.();
    this.connections.delete(conn);
    // Output the last reader never got goes back to the FIFO for the next one.
    if (this.connections.size === 0) this.backlog.push(conn.queue.takeAll());
  }
}
