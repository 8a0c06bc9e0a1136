/**
 * xz and bz2 as streams, through the system's `xz` and `bzip2`. Bun has no codec for
 * them; the programs decompress 1.5 to 3 times faster than the npm decoders
 * (WebAssembly or plain JavaScript), on another core than the one moving the data,
 * and add nothing to the executable. The cost is a package on the machine (Debian's
 * xz-utils and bzip2; Raspberry Pi OS has xz-utils), named when it is missing.
 *
 * The data goes through pipes both ways, so memory stays constant whatever the
 * size and there is never a temporary file.
 */
import { hostname } from "node:os";
import { DriverError, InvalidArgumentError } from "./errors.ts";

export type ToolEncoding = "xz" | "bz2";

interface Tool {
  program: string;
  /** Arguments that decompress stdin to stdout. */
  decode: string[];
  /** Arguments that compress stdin to stdout. */
  encode: string[];
  /** The Debian (and Raspberry Pi OS) package that installs the program. */
  debian: string;
}

const TOOLS: Record<ToolEncoding, Tool> = {
  xz: {
    program: "xz",
    // -T0: xz 5.4+ decompresses the blocks of a multi-threaded compression in parallel.
    decode: ["-dc", "-T0"],
    // Preset 3 for dumps, which run at disk speed: on a mix of programs it was 2.5 times
    // faster than the default 6 for 9 % more bytes (and 1 is only 5 % bigger again).
    encode: ["-c", "-3", "-T0"],
    debian: "xz-utils",
  },
  bz2: { program: "bzip2", decode: ["-dc"], encode: ["-c"], debian: "bzip2" },
};

export function isToolEncoding(encoding: string): encoding is ToolEncoding {
  return Object.hasOwn(TOOLS, encoding);
}

type Direction = "decode" | "encode";

/**
 * The error to report when this machine lacks the program for `encoding`, naming
 * the package that installs it; undefined when the program is there.
 */
export function missingTool(encoding: ToolEncoding): DriverError | undefined {
  const { program, debian } = TOOLS[encoding];
  if (locate(program)) return undefined;
  return new DriverError(
    `${encoding} data needs the '${program}' program, which is missing on ${hostname()}: install the ${debian} package (apt-get install ${debian})`,
  );
}

type Read = { done: true; value?: undefined } | { done: false; value: Uint8Array };

interface Running {
  output: { read(): Promise<Read>; cancel(reason?: unknown): Promise<void> };
  exited: Promise<number>;
  stderr: Promise<string>;
  kill(): void;
}

/**
 * `data` decompressed (or compressed) by the program. The stream ends normally only
 * when the program exited 0 after its last byte: corrupt or truncated input ends it
 * with an error naming the format, so a half-written image never looks like a whole
 * one. A missing program errors the stream (it does not throw), so the caller's
 * usual error path reports it. Cancelling the result ends the program.
 *
 * The program starts when the first byte (or the end) of `data` is there, not
 * before: a resource is opened for both directions and used in one, and the other
 * direction must not leave a program waiting for the session to end.
 */
export function throughTool(data: ReadableStream<Uint8Array>, encoding: ToolEncoding, direction: Direction): ReadableStream<Uint8Array> {
  const tool = TOOLS[encoding];
  const input = data.getReader();
  let running: Running | undefined;
  let cancelled = false;
  // An error of the incoming data (the client went away) is reported as itself,
  // not as the "unexpected end of input" the program then sees.
  let inputError: unknown;

  const spawn = (path: string, first: Read): Running => {
    let held: Uint8Array | undefined = first.done ? undefined : first.value;
    const feed = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (held) {
          controller.enqueue(held);
          held = undefined;
          return;
        }
        if (first.done) return controller.close();
        try {
          const { done, value } = await input.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (e) {
          inputError = e;
          controller.error(e);
        }
      },
      cancel: (reason) => input.cancel(reason),
    }, { highWaterMark: 0 });
    // A ReadableStream as stdin is fed as the pipe drains, and stdout fills only as
    // fast as we read it: backpressure reaches the sender, memory stays constant.
    const proc = Bun.spawn([path, ...tool[direction]], { stdin: feed, stdout: "pipe", stderr: "pipe" });
    const stdout = proc.stdout.getReader();
    const output = { read: () => stdout.read() as Promise<Read>, cancel: (reason?: unknown) => stdout.cancel(reason) };
    return { output, exited: proc.exited, stderr: new Response(proc.stderr).text(), kill: () => proc.kill() };
  };

  const stop = () => {
    running?.kill();
    void input.cancel().catch(() => {});
  };
  const failed = (reason: string) => {
    stop();
    return inputError ?? failure(encoding, direction, reason);
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!running) {
        let first: Read;
        try {
          first = (await input.read()) as Read;
        } catch (e) {
          controller.error(e);
          return;
        }
        if (cancelled) return;
        const path = locate(tool.program);
        if (!path) {
          stop();
          controller.error(missingTool(encoding));
          return;
        }
        running = spawn(path, first);
      }
      let chunk: Read;
      try {
        chunk = await running.output.read();
      } catch (e) {
        controller.error(failed((e as Error).message));
        return;
      }
      if (!chunk.done) {
        controller.enqueue(chunk.value);
        return;
      }
      // The end of the output is the end of the data only if the program says so.
      const code = await running.exited;
      if (inputError !== undefined || code !== 0) controller.error(failed(complaint(await running.stderr, tool.program)));
      else controller.close();
    },
    cancel: async (reason) => {
      cancelled = true;
      stop();
      await running?.output.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

/** The program's path in the current PATH, or null. */
function locate(program: string): string | null {
  return Bun.which(program, { PATH: process.env.PATH ?? "" });
}

function failure(encoding: ToolEncoding, direction: Direction, reason: string): Error {
  return direction === "decode"
    ? new InvalidArgumentError(`the ${encoding} data is corrupt or truncated: ${reason}`)
    : new DriverError(`${encoding} compression failed: ${reason}`);
}

/** The program's first complaint without its name and "(stdin)": `Unexpected end of input`. */
function complaint(stderr: string, program: string): string {
  const line = stderr.split("\n").find((l) => l.trim() !== "") ?? "";
  // The program names itself by the path it was started with: `/usr/bin/xz: (stdin): …`.
  const reason = line.replace(new RegExp(`^(\\S*/)?${program}: `), "").replace(/^\(stdin\):? /, "").replace(/[;.]\s*$/, "").trim();
  return reason || "the program failed without saying why";
}
