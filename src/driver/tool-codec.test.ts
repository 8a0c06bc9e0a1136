/** xz and bz2 through the system's programs, as the runtime's decode and encoder use them. */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { compress, imageData, streamOf } from "../../test/fixtures/disk-image.ts";
import { eventually } from "../common/eventually.ts";
import { readAll } from "./byte-stream.ts";
import { codecMissing, decode, encoder } from "./encoding.ts";
import { DriverError, InvalidArgumentError } from "./errors.ts";
import { throughTool } from "./tool-codec.ts";

async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(() => { throw new Error("expected a failure"); }, (e: Error) => e);
}

/** What the real program makes of `data` (`xz -dc`, `bzip2 -dc`). */
function undoneByTool(data: Uint8Array, format: "xz" | "bz2"): Uint8Array {
  const r = Bun.spawnSync([format === "xz" ? "xz" : "bzip2", "-dc"], { stdin: data, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${format} -dc failed: ${r.stderr.toString()}`);
  return new Uint8Array(r.stdout);
}

/** The pids of our own children running `name` (from /proc). */
function children(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8").trim();
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/.exec(stat)!;
      const ppid = Number(rest!.split(" ")[1]);
      if (ppid === process.pid && comm === name) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Waits until no child runs `name` any more (the kernel reaps it after we kill it). */
async function noChildren(name: string): Promise<void> {
  await eventually(() => expect(children(name)).toEqual([]), { what: `our ${name} children to exit`, interval: 20, timeout: 2000 });
}

const data = imageData(3 * 1024 * 1024 + 17);
const packed = { xz: compress(data, "xz"), bz2: compress(data, "bz2") };
const FORMATS = ["xz", "bz2"] as const;

describe("xz and bz2, through the system's programs", () => {
  const PATH = process.env.PATH;
  afterEach(() => {
    process.env.PATH = PATH;
  });

  test("files made by the real xz and bzip2 decode byte for byte", async () => {
    for (const format of FORMATS) expect(await readAll(decode(streamOf(packed[format]), format))).toEqual(data);
  });

  test("the encoder makes what the real xz and bzip2 decompress, and an empty input is a valid empty file", async () => {
    for (const format of FORMATS) {
      const encoded = await readAll(streamOf(data).pipeThrough(encoder(format)));
      expect(undoneByTool(encoded, format)).toEqual(data);
      const empty = await readAll(streamOf(new Uint8Array(0)).pipeThrough(encoder(format)));
      expect(undoneByTool(empty, format)).toEqual(new Uint8Array(0));
    }
  });

  test("truncated or corrupt data ends the stream with an error naming the format, never a normal end", async () => {
    const cut = (b: Uint8Array) => b.slice(0, b.byteLength - 1000);
    const flipped = (b: Uint8Array) => {
      const copy = b.slice();
      copy[copy.byteLength >> 1]! ^= 0xff;
      return copy;
    };
    const cases = [
      ["xz", cut(packed.xz), "the xz data is corrupt or truncated: Unexpected end of input"],
      ["xz", flipped(packed.xz), "the xz data is corrupt or truncated: Compressed data is corrupt"],
      ["xz", new Uint8Array(0), "the xz data is corrupt or truncated: File format not recognized"],
      ["bz2", cut(packed.bz2), "the bz2 data is corrupt or truncated: Compressed file ends unexpectedly"],
      ["bz2", flipped(packed.bz2), "the bz2 data is corrupt or truncated: Data integrity error when decompressing"],
    ] as const;
    for (const [format, bytes, message] of cases) {
      const e = await failure(readAll(decode(streamOf(bytes), format)));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toBe(message);
    }
  });

  test("a missing program errors the stream (it does not throw), naming the Debian package; codecMissing says so up front", async () => {
    process.env.PATH = "/nonexistent";
    const message = `xz data needs the 'xz' program, which is missing on ${hostname()}: install the xz-utils package (apt-get install xz-utils)`;
    expect(codecMissing("xz")).toEqual(new DriverError(message));
    expect(codecMissing("bz2")!.message).toEndWith("install the bzip2 package (apt-get install bzip2)");
    expect(codecMissing("gzip")).toBeUndefined();
    expect(codecMissing("lz4")!.message).toBe("cannot handle 'lz4' data here (known: gzip, zstd, xz, bz2)");
    let e = await failure(readAll(decode(streamOf(packed.xz), "xz")));
    expect(e).toBeInstanceOf(DriverError);
    expect(e.message).toBe(message);
    e = await failure(readAll(streamOf(data).pipeThrough(encoder("bz2"))));
    expect(e.message).toStartWith("bz2 data needs the 'bzip2' program, which is missing on");
  });

  test("an error of the incoming data is reported as itself, not as a truncation", async () => {
    const gone = new Error("the client went away");
    let sent = 0;
    const input = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > 0) return c.error(gone);
        c.enqueue(packed.xz.slice(0, 100_000));
        sent++;
      },
    });
    expect(await failure(readAll(decode(input, "xz")))).toBe(gone);
  });

  test("streaming: a reader that pauses holds the program back (nothing piles up), and cancelling ends it", async () => {
    const zeros = compress(new Uint8Array(96 * 1024 * 1024), "xz");
    const reader = decode(streamOf(zeros), "xz").getReader();
    await reader.read();
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    // The reader pauses for half a second (the scenario): a program not held back fills memory meanwhile.
    await Bun.sleep(500);
    expect(process.memoryUsage().rss - before).toBeLessThan(16 * 1024 * 1024);
    expect(children("xz")).toHaveLength(1);
    await reader.cancel();
    await noChildren("xz");
  });

  test("no program starts before the data does: a direction nobody uses costs nothing", async () => {
    // As a resource is opened, both directions are set up and read; one never gets data.
    for (const direction of ["decode", "encode"] as const) {
      let asked!: () => void;
      const waiting = new Promise<void>((r) => (asked = r));
      const idle = new ReadableStream<Uint8Array>({ pull: () => asked() }, { highWaterMark: 0 });
      const reader = throughTool(idle, "xz", direction).getReader();
      const read = reader.read().catch(() => {});
      // It has asked for the first byte, which never comes.
      await waiting;
      expect({ direction, running: children("xz") }).toEqual({ direction, running: [] });
      await reader.cancel();
      await read;
    }
    expect(children("xz")).toEqual([]);
  });
});
