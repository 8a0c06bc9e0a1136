/**
 * `j serial pipe`: the port's output to stdout or a file, and optionally stdin to
 * the port. Flags and their conflicts follow upstream's command.
 */
import fs from "node:fs";
import { InvalidArgumentError, type ByteStream } from "@jumpstarter/driver";
import { linger } from "./linger.ts";

export interface PipeFlags {
  output?: string;
  /** -i/--input given (true), --no-input given (false), or neither. */
  input?: boolean;
  noInput?: boolean;
  append?: boolean;
  noOutput?: boolean;
}

export interface PipePlan {
  output?: string;
  append: boolean;
  input: boolean;
  noOutput: boolean;
  /** The one-line status for stderr. */
  status: string;
}

/** Checks the flag combination; stdin is read by default when it is not a terminal. */
export function planPipe(flags: PipeFlags, stdinIsTTY: boolean): PipePlan {
  const { output, append = false, noOutput = false } = flags;
  if (flags.input && flags.noInput) throw new InvalidArgumentError("cannot use both --input and --no-input");
  if (noOutput && output !== undefined) throw new InvalidArgumentError("cannot use both --no-output and --output");
  if (noOutput && append) throw new InvalidArgumentError("cannot use both --no-output and --append");
  if (append && output === undefined) throw new InvalidArgumentError("--append requires --output");
  const input = flags.noInput ? false : flags.input ? true : !stdinIsTTY;
  if (noOutput && !input) throw new InvalidArgumentError("--no-output requires input: pipe something into stdin or use --input");

  const mode = !input ? "read-only" : flags.input ? "input forced on" : "stdin is piped";
  let status: string;
  if (noOutput) status = `Sending stdin to the serial port, ignoring its output, until stdin ends (${mode})`;
  else if (input) status = `Sending stdin to the serial port and its output to ${output ?? "stdout"} (${mode}); Ctrl+C to stop`;
  else status = `Reading the serial port into ${output ?? "stdout"} (${mode}); Ctrl+C to stop`;
  return { output, append, input, noOutput, status };
}

export interface PipeIo {
  stdin: ReadableStream<Uint8Array>;
  stdout: (bytes: Uint8Array) => void | Promise<void>;
  stderr: (line: string) => void;
}

export async function runPipe(stream: ByteStream, plan: PipePlan, io: PipeIo): Promise<void> {
  // Opened before anything else so a bad path fails at once.
  const file = plan.output === undefined ? undefined : fs.openSync(plan.output, plan.append ? "a" : "w");
  const stdin = io.stdin.getReader();
  let finished = false;
  const sendInput = async () => {
    const writer = stream.writable.getWriter();
    for (;;) {
      const { done, value } = await stdin.read();
      if (finished) return;
      if (done) break;
      await writer.write(value);
    }
    // A half-close: the port stays open and its output keeps coming.
    await writer.close();
  };
  try {
    if (plan.noOutput) {
      await sendInput();
      const discard = new AbortController();
      const draining = stream.readable.pipeTo(new WritableStream(), { signal: discard.signal });
      await linger(draining);
      // Aborting the pipe cancels the stream.
      discard.abort();
      await draining.catch(() => {});
      return;
    }
    const sending = plan.input ? sendInput() : undefined;
    sending?.catch((e) => {
      if (!finished) io.stderr(`Sending stdin stopped: ${(e as Error).message}`);
    });
    for await (const chunk of stream.readable) {
      if (file === undefined) await io.stdout(chunk);
      else fs.writeSync(file, chunk);
    }
    io.stderr("The serial connection was closed (end of stream).");
  } finally {
    finished = true;
    if (file !== undefined) fs.closeSync(file);
    await stdin.cancel().catch(() => {});
    await stream.readable.cancel().catch(() => {});
  }
}
