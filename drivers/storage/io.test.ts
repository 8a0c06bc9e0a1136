import { describe, expect, test } from "bun:test";
import type { FileHandle } from "node:fs/promises";
import { writeBlocks } from "./io.ts";

/**
 * A file in memory whose writev takes at most `most` bytes and `maxParts` buffers per
 * call, recording each call. With `late`, a write reads its buffers a moment after it
 * was called, as the kernel does while a real writev is in flight.
 */
function fakeFile(size: number, most = Infinity, maxParts = Infinity, late = false) {
  const bytes = new Uint8Array(size);
  const calls: { position: number; parts: number; written: number }[] = [];
  const file = {
    async writev(parts: Uint8Array[], position: number) {
      if (parts.length > maxParts) throw Object.assign(new Error("writev: too many buffers"), { code: "EINVAL" });
      if (late) await Bun.sleep(1);
      let written = 0;
      for (const p of parts) {
        const n = Math.min(p.byteLength, most - written);
        bytes.set(p.subarray(0, n), position + written);
        written += n;
        if (written === most) break;
      }
      calls.push({ position, parts: parts.length, written });
      return { bytesWritten: written, buffers: parts };
    },
  } as unknown as FileHandle;
  return { file, bytes, calls };
}

function chunks(data: Uint8Array, size: number, copy = false): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= data.byteLength) return c.close();
      c.enqueue(copy ? data.slice(at, at + size) : data.subarray(at, at + size));
      at += size;
    },
  });
}

const data = new Uint8Array(10_000).map((_, i) => (i * 7) % 251);

describe("writeBlocks", () => {
  test("chunks of any size go out in whole blocks at their offsets, byte for byte", async () => {
    for (const chunk of [7, 333, 4096, 10_000]) {
      const { file, bytes, calls } = fakeFile(data.byteLength);
      const { bytes: n } = await writeBlocks(file, chunks(data, chunk), { blockSize: 4096 });
      expect(n).toBe(data.byteLength);
      expect(bytes).toEqual(data);
      expect(calls.map((c) => c.position)).toEqual([0, 4096, 8192]);
    }
  });

  test("a short write goes on from where it stopped, inside a chunk too", async () => {
    const { file, bytes, calls } = fakeFile(data.byteLength, 1000);
    await writeBlocks(file, chunks(data, 333), { blockSize: 4096 });
    expect(bytes).toEqual(data);
    expect(calls.slice(0, 5).map((c) => c.position)).toEqual([0, 1000, 2000, 3000, 4000]);
  });

  test("a block of many tiny chunks is written in calls of at most 1024 buffers", async () => {
    const { file, bytes, calls } = fakeFile(data.byteLength, Infinity, 1024);
    await writeBlocks(file, chunks(data, 1), { blockSize: 4096 });
    expect(bytes).toEqual(data);
    expect(Math.max(...calls.map((c) => c.parts))).toBe(1024);
  });

  test("with recycle, each chunk goes back once, after the write of its last byte: a source that refills it at once spoils nothing", async () => {
    // 1500-byte chunks straddle the 4096-byte blocks, and the writes read their buffers late.
    const { file, bytes } = fakeFile(data.byteLength, Infinity, Infinity, true);
    const back: Uint8Array[] = [];
    await writeBlocks(file, chunks(data, 1500, true), {
      blockSize: 4096,
      recycle: (chunk) => {
        back.push(chunk);
        chunk.fill(0xff);
      },
    });
    expect(bytes).toEqual(data);
    expect(back.length).toBe(Math.ceil(data.byteLength / 1500));
    expect(new Set(back).size).toBe(back.length);
  });

  test("a write of nothing is the end of the storage", async () => {
    const { file } = fakeFile(data.byteLength, 0);
    const e = await writeBlocks(file, chunks(data, 4096), { blockSize: 4096 }).then(() => undefined, (e: Error) => e);
    expect(e?.message).toContain("does not fit");
  });
});
