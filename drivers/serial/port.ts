/**
 * An open tty as a ByteStream. Reads go through `Bun.file(fd).stream()`, which waits
 * for a non-blocking fd in Bun's event loop; writes use `fs.writeSync` and retry on
 * EAGAIN, since a UART at a low baudrate drains its output buffer slowly.
 */
import fs from "node:fs";
import { UnavailableError, type ByteStream } from "@jumpstarter/driver";
import { configureRaw, type LineSettings } from "./termios.ts";

const OPEN_FLAGS = fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK;
const MAX_WRITE_WAIT_MS = 10;

export class TtyPort {
  readonly stream: ByteStream;
  /** Settles once the fd is closed, whoever closed it. */
  readonly closed: Promise<void>;
  private isClosed = false;
  private markClosed!: () => void;
  // Typed by what is used: Bun's and Node's reader types do not agree.
  private readonly source: { read(): Promise<{ value?: Uint8Array }>; cancel(): Promise<void> };
  private endReadable?: () => void;

  private constructor(
    readonly fd: number,
    readonly path: string,
  ) {
    this.closed = new Promise((r) => (this.markClosed = r));
    this.source = Bun.file(fd).stream().getReader();
    const readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.endReadable = () => {
          try {
            controller.close();
          } catch {
            // already closed, or errored by a failed read
          }
        };
      },
      pull: async (controller) => {
        try {
          const { value } = await this.source.read();
          if (!value) void this.close();
          else controller.enqueue(value);
        } catch (e) {
          // A close() from our side cancels the read; anything else is the device going away.
          if (!this.isClosed) controller.error(new UnavailableError(`reading ${path} failed: ${(e as Error).message}`));
          void this.close();
        }
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      // The client is done sending; what the device says still comes through.
      close() {},
      abort: () => this.close(),
    });
    this.stream = { readable, writable };
  }

  /** Opens and configures the tty; the caller owns it until the stream ends or close(). */
  static async open(path: string, settings: LineSettings): Promise<TtyPort> {
    let fd: number;
    try {
      fd = fs.openSync(path, OPEN_FLAGS);
    } catch (e) {
      throw new UnavailableError(`cannot open serial device ${path}: ${(e as Error).message}`);
    }
    try {
      await configureRaw(fd, path, settings);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new TtyPort(fd, path);
  }

  private async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    let wait = 1;
    while (offset < chunk.byteLength) {
      // Checked before every write: once closed, the fd number may belong to something else.
      if (this.isClosed) throw Object.assign(new Error(`${this.path} is closed`), { code: "EPIPE" });
      try {
        offset += fs.writeSync(this.fd, chunk, offset);
        wait = 1;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw new UnavailableError(`writing to ${this.path} failed: ${(e as Error).message}`);
        await Bun.sleep(wait);
        wait = Math.min(wait * 2, MAX_WRITE_WAIT_MS);
      }
    }
  }

  /** Closes the fd and ends the byte stream; safe to call more than once. */
  async close(): Promise<void> {
    if (this.isClosed) return this.closed;
    this.isClosed = true;
    this.endReadable?.();
    // Stop Bun's read on the fd before the fd goes, so it never reads a reused number.
    await this.source.cancel().catch(() => {});
    fs.closeSync(this.fd);
    this.markClosed();
  }
}
