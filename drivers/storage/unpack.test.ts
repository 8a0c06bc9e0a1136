import { describe, expect, test } from "bun:test";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { compress, imageData, streamOf } from "../../test/fixtures/disk-image.ts";
import { unpack } from "./unpack.ts";

const data = imageData(3 * 1024 * 1024 + 17);
const packed = { xz: compress(data, "xz"), bz2: compress(data, "bz2") };

// The codecs themselves are the runtime's (src/driver/tool-codec.test.ts, encoding.test.ts).
describe("an image from a URL", () => {
  test("unpack decompresses each format by its first bytes, and leaves anything else alone", async () => {
    const all = [["gzip", gzipSync(data)], ["zstd", zstdCompressSync(data)], ["xz", packed.xz], ["bz2", packed.bz2]] as const;
    for (const [name, bytes] of all) {
      const { data: out, format } = await unpack(streamOf(bytes));
      expect(format).toBe(name);
      expect(await Bun.readableStreamToBytes(out)).toEqual(data);
    }
    const plain = await unpack(streamOf(data));
    expect(plain.format).toBeUndefined();
    expect(await Bun.readableStreamToBytes(plain.data)).toEqual(data);
  });
});
