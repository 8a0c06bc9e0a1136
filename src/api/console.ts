/**
 * The console adapter: any driver with a byte stream (a serial port, a QEMU or
 * simulated board's console) as an object to `expect()` text on and `send()` to —
 * the main primitive of a board test. A failed expect shows the last lines seen.
 */
import type { ByteStream } from "../driver/byte-stream.ts";
import { type Match, type Pattern, Expecter } from "../../drivers/serial/expect.ts";

export type { Match, Pattern };

export interface ConsoleOptions {
  /** The driver's byte-stream method (default "connect"). */
  method?: string;
  /** Default timeout of `expect()` in milliseconds (default 30 000). */
  timeout?: number;
  /** What `sendLine()` appends (default "\r", what a terminal sends for Enter). */
  lineEnding?: string;
  /** Copy everything received here as it arrives (e.g. `process.stdout`). */
  echo?: { write(chunk: Uint8Array): unknown };
}

export interface Console extends AsyncDisposable {
  /** Waits for text (a string or RegExp, or any of several); consumes through the match. */
  expect(pattern: Pattern | Pattern[], opts?: { timeout?: number }): Promise<Match>;
  send(data: string | Uint8Array): Promise<void>;
  sendLine(line?: string): Promise<void>;
  /** Everything received so far, decoded as UTF-8. */
  readonly transcript: string;
  close(): Promise<void>;
}

/** What openConsole needs of a client: `DriverClient.stream`. */
export interface StreamOpener {
  stream(method?: string): Promise<ByteStream>;
}

const TRANSCRIPT_LIMIT = 1024 * 1024;

export async function openConsole(client: StreamOpener, opts: ConsoleOptions = {}): Promise<Console> {
  const stream = await client.stream(opts.method ?? "connect");
  const decoder = new TextDecoder();
  let transcript = "";
  const expecter = new Expecter(stream.readable, {
    onData: (bytes) => {
      transcript = (transcript + decoder.decode(bytes, { stream: true })).slice(-TRANSCRIPT_LIMIT);
      opts.echo?.write(bytes);
    },
  });
  const writer = stream.writable.getWriter();
  const encoder = new TextEncoder();
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= (async () => {
    await expecter.close();
    await writer.close().catch(() => writer.abort().catch(() => {}));
  })());
  return {
    expect: (pattern, o) => expecter.expect(pattern, o?.timeout ?? opts.timeout ?? 30_000),
    send: async (data) => {
      await writer.write(typeof data === "string" ? encoder.encode(data) : data);
    },
    sendLine: async (line = "") => {
      await writer.write(encoder.encode(line + (opts.lineEnding ?? "\r")));
    },
    get transcript() {
      return transcript;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
