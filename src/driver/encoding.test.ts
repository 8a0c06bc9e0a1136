import { describe, expect, test } from "bun:test";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { readAll } from "./byte-stream.ts";
import { decode, detectEncoding, encoder, peek } from "./encoding.ts";
import { InvalidArgumentError } from "./errors.ts";

const text = new TextEncoder().encode("an image ".repeat(5000));
const streamOf = (...chunks: Uint8Array[]) => new ReadableStream<Uint8Array>({
  start(c) {
    for (const x of chunks) c.enqueue(x);
    c.close();
  },
});

describe("detectEncoding", () => {
  test("recognises upstream's four formats by their magic bytes", () => {
    expect(detectEncoding(gzipSync(text))).toBe("gzip");
    expect(detectEncoding(zstdCompressSync(text))).toBe("zstd");
    expect(detectEncoding(Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1]))).toBe("xz");
    expect(detectEncoding(new TextEncoder().encode("BZh91AY&SY"))).toBe("bz2");
  });

  test("plain data, short data and a bare prefix are not compressed", () => {
    expect(detectEncoding(text)).toBeUndefined();
    expect(detectEncoding(new Uint8Array())).toBeUndefined();
    expect(detectEncoding(Uint8Array.from([0x1f, 0x8b]))).toBeUndefined();
  });
});

test("peek returns the first bytes and a stream that still yields everything", async () => {
  const [head, whole] = await peek(streamOf(text.subarray(0, 2), text.subarray(2, 3), text.subarray(3)));
  expect(head.byteLength).toBeGreaterThanOrEqual(6);
  expect(new TextDecoder().decode(head)).toStartWith("an ima");
  expect(await readAll(whole)).toEqual(text);
  const [short, all] = await peek(streamOf(Uint8Array.from([1, 2])));
  expect(short).toEqual(Uint8Array.from([1, 2]));
  expect(await readAll(all)).toEqual(Uint8Array.from([1, 2]));
});

test("gzip and zstd round-trip through encoder and decode", async () => {
  for (const encoding of ["gzip", "zstd"]) {
    const packed = streamOf(text).pipeThrough(encoder(encoding));
    expect(await readAll(decode(packed, encoding))).toEqual(text);
  }
});

test("corrupt or truncated data fails with an error naming the encoding", async () => {
  const truncated = gzipSync(text).subarray(0, 40);
  const e = await readAll(decode(streamOf(truncated), "gzip")).then(() => undefined, (x: Error) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect(e!.message).toStartWith("the gzip data is corrupt or truncated");
});

test("an unknown format is refused by name (xz and bz2: tool-codec.test.ts)", () => {
  expect(() => encoder("lz4")).toThrow("cannot handle 'lz4' data here (known: gzip, zstd, xz, bz2)");
  expect(() => decode(streamOf(text), "lz4")).toThrow("cannot handle 'lz4' data here");
});
