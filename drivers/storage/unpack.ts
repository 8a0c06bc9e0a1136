/**
 * Compressed images: disk images ship as gzip, zstd, xz (Raspberry Pi OS, many Yocto
 * builds) or bz2. Like upstream's flashers we recognise the format by its first bytes
 * and decompress on the exporter while the image streams to the disk, so a many-GiB
 * image is never held in memory or in a temporary file.
 *
 * gzip and zstd: Bun's own DecompressionStream (and, for a client's file, the
 * resource negotiation of the driver runtime). xz and bz2: Bun has no codec for
 * them, so the system's `xz` and `bzip2` run as a child process. They decompress
 * 1.5 to 3 times faster than the npm decoders (WebAssembly or plain JavaScript) and
 * on another core than the one moving the data, and there is nothing to embed in the
 * executable; the cost is a package on the exporter, named when it is missing.
 */
import { DriverError, InvalidArgumentError } from "@jumpstarter/driver";

export type Format = "gzip" | "zstd" | "xz" | "bz2";

interface Tool {
  /** The program and its arguments: decompress stdin to stdout. */
  argv: string[];
  /** The Debian (and Raspberry Pi OS) package that installs it. */
  debian: string;
}

const FORMATS: { name: Format; magic: number[]; tool?: Tool }[] = [
  { name: "gzip", magic: [0x1f, 0x8b, 0x08] },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd] },
  // -T0: xz 5.4+ decompresses the blocks of a multi-threaded compression in parallel.
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: { argv: ["xz", "-dc", "-T0"], debian: "xz-utils" } },
  { name: "bz2", magic: [0x42, 0x5a, 0x68], tool: { argv: ["bzip2", "-dc"], debian: "bzip2" } },
];

/** Enough leading bytes to tell every format apart. */
export const HEAD = 6;

/**
 * What the storage drivers decompress themselves from a client's stream: the driver
 * runtime's resource negotiation handles gzip and zstd, but not these.
 */
export const DRIVER_DECODED: readonly Format[] = ["xz", "bz2"];

/**
 * The label by which a storage driver tells clients which formats it decompresses
 * from a client's stream, so that a client sends such a file as it is only to a
 * driver that will undo it (anything else gets the runtime's negotiation).
 */
export const DECOMPRESSES_LABEL = "jmp.dev/decompresses";

/** The format whose magic bytes `head` starts with, if any. */
export function detect(head: Uint8Array): Format | undefined {
  return FORMATS.find((f) => startsAs(head, f.name))?.name;
}

export function startsAs(head: Uint8Array, format: Format): boolean {
  const magic = FORMATS.find((f) => f.name === format)!.magic;
  return head.byteLength >= magic.length && magic.every((b, i) => head[i] === b);
}

/**
 * Reads at least `count` bytes (fewer if the data is shorter) without losing them:
 * returns those bytes and a stream that yields everything from the first byte.
 */
export async function peek(data: ReadableStream<Uint8Array>, count = HEAD): Promise<[Uint8Array, ReadableStream<Uint8Array>]> {
  const reader = data.getReader();
  const head: Uint8Array[] = [];
  let seen = 0;
  let ended = false;
  try {
    while (seen < count && !ended) {
      const { done, value } = await reader.read();
      if (done) ended = true;
      else {
        head.push(value);
        seen += value.byteLength;
      }
    }
  } catch (e) {
    reader.releaseLock();
    throw e;
  }
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of head) controller.enqueue(c);
      if (ended) controller.close();
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return [Buffer.concat(head), whole];
}

/**
 * `data` decompressed as `format`. Corrupt or truncated data ends the stream with
 * an error naming the format, never with a normal end: a half-written image must
 * not look like a flashed one.
 */
export function decompress(data: ReadableStream<Uint8Array>, format: Format): ReadableStream<Uint8Array> {
  const tool = FORMATS.find((f) => f.name === format)!.tool;
  if (tool) return throughProcess(data, format, tool);
  const inflate = new DecompressionStream(format as "gzip" | "zstd") as unknown as TransformStream<Uint8Array, Uint8Array>;
  const reader = data.pipeThrough(inflate).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(corrupt(format, (e as Error).message));
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * `data` as it is, or decompressed if it still starts like `format`. A client's
 * stream named as xz or bz2 arrives compressed when our client sent the file as it
 * is (the driver said it decompresses, see DECOMPRESSES_LABEL), and decompressed when
 * upstream's client undid it after our exporter declined the encoding.
 */
export function decompressIfStill(data: ReadableStream<Uint8Array>, format: Format): ReadableStream<Uint8Array> {
  // Lazy: nothing is read until the driver reads (a dump's resource is never read).
  let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!reader) {
        const [head, whole] = await peek(data);
        reader = (startsAs(head, format) ? decompress(whole, format) : whole).getReader();
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value!);
    },
    cancel: (reason) => (reader ? reader.cancel(reason) : data.cancel(reason)),
  }, { highWaterMark: 0 });
}

/** `data` decompressed if its first bytes name a format; `format` says which. */
export async function unpack(data: ReadableStream<Uint8Array>): Promise<{ data: ReadableStream<Uint8Array>; format?: Format }> {
  const [head, whole] = await peek(data);
  const format = detect(head);
  return format ? { data: decompress(whole, format), format } : { data: whole };
}

function corrupt(format: Format, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`the ${format} data is corrupt or truncated: ${reason}`);
}

/** The program's first complaint, without its name and "(stdin)": `Unexpected end of input`. */
function complaint(stderr: string, program: string): string {
  const line = stderr.split("\n").find((l) => l.trim() !== "") ?? "";
  // The program names itself by the path it was started with: `/usr/bin/xz: (stdin): …`.
  const reason = line.replace(new RegExp(`^(\\S*/)?${program}: `), "").replace(/^\(stdin\):? /, "").replace(/[;.]\s*$/, "").trim();
  return reason || "the decompressor failed without saying why";
}

function throughProcess(data: ReadableStream<Uint8Array>, format: Format, tool: Tool): ReadableStream<Uint8Array> {
  const program = tool.argv[0]!;
  const path = Bun.which(program, { PATH: process.env.PATH ?? "" });
  if (!path) {
    void data.cancel().catch(() => {});
    throw new DriverError(
      `cannot decompress ${format} data on this exporter: the '${program}' program is missing; install the ${tool.debian} package (apt-get install ${tool.debian})`,
    );
  }
  // The input is handed over through our own stream so that an error of the
  // incoming data (the client went away) is reported as itself, not as the
  // "unexpected end of input" the program then sees.
  let inputError: unknown;
  const input = data.getReader();
  const feed = new ReadableStream<Uint8Array>({
    async pull(controller) {
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
  // fast as we read it: memory stays constant whatever the image's size.
  const proc = Bun.spawn([path, ...tool.argv.slice(1)], { stdin: feed, stdout: "pipe", stderr: "pipe" });
  const stderr = new Response(proc.stderr).text();
  const output = proc.stdout.getReader();
  const stop = () => {
    proc.kill();
    void input.cancel().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof output.read>>;
      try {
        chunk = await output.read();
      } catch (e) {
        stop();
        controller.error(inputError ?? corrupt(format, (e as Error).message));
        return;
      }
      if (!chunk.done) {
        controller.enqueue(chunk.value);
        return;
      }
      // The end of the output is the end of the image only if the program says so.
      const code = await proc.exited;
      if (inputError !== undefined) controller.error(inputError);
      else if (code !== 0) controller.error(corrupt(format, complaint(await stderr, program)));
      else controller.close();
    },
    cancel: async (reason) => {
      stop();
      await output.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
