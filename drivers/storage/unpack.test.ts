import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { DriverError, InvalidArgumentError } from "@jumpstarter/driver";
import { compress } from "../../test/fixtures/disk-image.ts";
import { decompress, decompressIfStill, unpack } from "./unpack.ts";

/** Random data with long runs of zeros, like a disk image. */
function image(bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 256 * 1024) crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 32 * 1024)));
  return data;
}

/** `data` as a stream of `chunk`-byte pieces, as it arrives from the network. */
function streamOf(data: Uint8Array, chunk = 64 * 1024): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= data.byteLength) return c.close();
      c.enqueue(data.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function drain(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(() => { throw new Error("expected a failure"); }, (e: Error) => e);
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

const data = image(3 * 1024 * 1024 + 17);
const packed = { xz: compress(data, "xz"), bz2: compress(data, "bz2") };

describe("xz and bz2, through the system's programs", () => {
  const PATH = process.env.PATH;
  afterEach(() => {
    process.env.PATH = PATH;
  });

  test("files made by the real xz and bzip2 come back byte for byte", async () => {
    for (const format of ["xz", "bz2"] as const) {
      expect(await drain(decompress(streamOf(packed[format]), format))).toEqual(data);
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
      ["bz2", cut(packed.bz2), "the bz2 data is corrupt or truncated: Compressed file ends unexpectedly"],
      ["bz2", flipped(packed.bz2), "the bz2 data is corrupt or truncated: Data integrity error when decompressing"],
    ] as const;
    for (const [format, bytes, message] of cases) {
      const e = await failure(drain(decompress(streamOf(bytes), format)));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toBe(message);
    }
  });

  test("a missing program is named, with the Debian package that installs it", () => {
    process.env.PATH = "/nonexistent";
    expect(() => decompress(streamOf(packed.xz), "xz")).toThrow(
      new DriverError("cannot decompress xz data on this exporter: the 'xz' program is missing; install the xz-utils package (apt-get install xz-utils)"),
    );
    expect(() => decompress(streamOf(packed.bz2), "bz2")).toThrow("install the bzip2 package (apt-get install bzip2)");
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
    expect(await failure(drain(decompress(input, "xz")))).toBe(gone);
  });

  test("streaming: a reader that pauses holds the program back (nothing piles up), and cancelling ends it", async () => {
    const zeros = compress(new Uint8Array(96 * 1024 * 1024), "xz");
    const reader = decompress(streamOf(zeros), "xz").getReader();
    await reader.read();
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    await Bun.sleep(500);
    expect(process.memoryUsage().rss - before).toBeLessThan(16 * 1024 * 1024);
    expect(children("xz")).toHaveLength(1);
    await reader.cancel();
    for (let i = 0; i < 50 && children("xz").length > 0; i++) await Bun.sleep(20);
    expect(children("xz")).toEqual([]);
  });
});

describe("recognising a format", () => {
  test("unpack decompresses each format by its first bytes, and leaves anything else alone", async () => {
    const all = [["gzip", gzipSync(data)], ["zstd", zstdCompressSync(data)], ["xz", packed.xz], ["bz2", packed.bz2]] as const;
    for (const [name, bytes] of all) {
      const { data: out, format } = await unpack(streamOf(bytes));
      expect(format).toBe(name);
      expect(await drain(out)).toEqual(data);
    }
    const plain = await unpack(streamOf(data));
    expect(plain.format).toBeUndefined();
    expect(await drain(plain.data)).toEqual(data);
  });

  test("decompressIfStill undoes data that still starts like the format, and passes on data already undone", async () => {
    expect(await drain(decompressIfStill(streamOf(packed.xz), "xz"))).toEqual(data);
    expect(await drain(decompressIfStill(streamOf(data), "xz"))).toEqual(data);
    expect(await drain(decompressIfStill(streamOf(new Uint8Array(0)), "bz2"))).toEqual(new Uint8Array(0));
  });
});
