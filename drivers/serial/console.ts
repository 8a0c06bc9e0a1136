/**
 * `j serial start-console`: an interactive terminal on the port. Keys go to the
 * device as typed (stdin in raw mode, so Ctrl+C reaches the device too); pressing
 * Ctrl+B three times in a row leaves.
 */
import type { ByteStream } from "@jumpstarter/driver";
import { linger } from "./linger.ts";

const CTRL_B = 0x02;
const EXIT_PRESSES = 3;

export const CONSOLE_HINT = "Serial console: leave with Ctrl+B pressed three times.";

export interface ConsoleIo {
  input: ReadableStream<Uint8Array>;
  output: (bytes: Uint8Array) => void | Promise<void>;
}

/**
 * Copies input to the stream and the stream to output until the exit keys are
 * pressed (resolves "exit") or the device side ends (resolves "closed"). When the
 * input ends first, the stream is half-closed and its output still shown.
 */
export async function runConsole(stream: ByteStream, io: ConsoleIo): Promise<"exit" | "closed"> {
  const input = io.input.getReader();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  let presses = 0;

  const typing = (async (): Promise<"exit" | undefined> => {
    for (;;) {
      const { done, value } = await input.read();
      if (done) {
        await writer.close();
        return undefined;
      }
      // Like upstream, the first presses still reach the device; only the last one is kept back.
      let end = value.byteLength;
      for (let i = 0; i < value.byteLength; i++) {
        presses = value[i] === CTRL_B ? presses + 1 : 0;
        if (presses === EXIT_PRESSES) {
          end = i;
          break;
        }
      }
      if (end > 0) await writer.write(value.subarray(0, end));
      if (presses === EXIT_PRESSES) {
        await writer.close();
        return "exit";
      }
    }
  })();
  const showing = (async (): Promise<"closed"> => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return "closed";
      await io.output(value);
    }
  })();

  // Whichever side loses the race may fail once the stream is torn down; that is expected.
  typing.catch(() => {});
  showing.catch(() => {});
  try {
    const first = await Promise.race([typing, showing]);
    if (first === "exit") await linger(showing);
    return first ?? (await showing);
  } finally {
    await input.cancel().catch(() => {});
    await reader.cancel().catch(() => {});
    await writer.abort().catch(() => {});
  }
}
