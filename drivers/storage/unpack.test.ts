import { describe, expect, test } from "bun:test";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { compress } from "../../test/fixtures/disk-image.ts";
import { unpack } from "./unpack.ts";

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

const data = image(3 * 1024 * 1024 + 17);
const packed = { xz: compress(data, "xz"), bz2: compress(data, "bz2") };

// The codecs themselves are the runtime's (src/driver/tool-codec.test.ts, encoding.test.ts).
describe("an image from a URL", () => {
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
});
