/** Transit compression's zstd frames: what transit-pack.ts makes, and what transit-unpack.ts undoes (ours and any other zstd). */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { imageData, streamOf as pieces } from "../../test/fixtures/disk-image.ts";
import { InvalidArgumentError } from "./errors.ts";
import { filledWith, repeatedFrame, storedFrame, transitPacker } from "./transit-pack.ts";
import { unpackTransit } from "./transit-unpack.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

async function all(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

const pack = (data: Uint8Array, chunk = 256 * KiB) => all(pieces(data, chunk).pipeThrough(transitPacker()));
const unpack = (wire: Uint8Array, piece = 16 * KiB) => all(unpackTransit(pieces(wire, piece)));
/** The runtime's own zstd streams, typed as the byte transforms they are. */
const runtimeCodec = (codec: object) => codec as TransformStream<Uint8Array, Uint8Array>;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(b.subarray(at, Math.min(n, at + 65536)));
  return b;
}

/** The system's zstd program, as the reference decoder (package zstd, .ci/packages.txt). */
function zstdProgram(args: string[], input: Uint8Array): Buffer {
  const p = Bun.spawnSync(["zstd", ...args], { stdin: input, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`zstd ${args.join(" ")} exited ${p.exitCode}: ${p.stderr}`);
  return p.stdout;
}

describe("transit packing", () => {
  const cases: [string, Uint8Array][] = [
    ["a disk image (random data and runs of zeros)", imageData(3 * MiB + 12_345)],
    ["random data", random(MiB + 77)],
    ["erased flash (0xff)", new Uint8Array(MiB).fill(0xff)],
    ["zeros, one byte short of a block", new Uint8Array(128 * KiB - 1)],
    ["a single byte", new Uint8Array([42])],
    ["nothing", new Uint8Array(0)],
  ];
  for (const [name, data] of cases) {
    test(`${name}: unpacked as it was, by ours (in any split) and by the zstd program and the runtime's decoder`, async () => {
      const wire = await pack(data, 100_000);
      expect(sha(await unpack(wire))).toBe(sha(data));
      // Headers split across every chunk boundary: one byte at a time for the small cases.
      expect(sha(await unpack(wire, data.byteLength > 256 * KiB ? 4093 : 1))).toBe(sha(data));
      expect(sha(await unpack(wire, 1 * MiB))).toBe(sha(data));
      if (data.byteLength > 0) {
        expect(sha(zstdProgram(["-dc"], wire))).toBe(sha(data));
        expect(sha(await all(pieces(wire, 4096).pipeThrough(runtimeCodec(new DecompressionStream("zstd" as never)))))).toBe(sha(data));
      }
    });
  }

  test("empty space goes as RLE frames of a few bytes; random data as stored frames, a few bytes over its size; a disk image shrinks", async () => {
    // A frame per 256 KiB: its header (9 bytes) and two RLE blocks (a 3-byte header and the byte each).
    expect((await pack(new Uint8Array(4 * MiB))).byteLength).toBe(16 * (9 + 2 * 4));
    expect((await pack(new Uint8Array(4 * MiB).fill(0xff))).byteLength).toBe(16 * (9 + 2 * 4));
    const noise = random(4 * MiB);
    const packed = await pack(noise);
    expect(packed.byteLength).toBeGreaterThan(noise.byteLength);
    expect(packed.byteLength).toBeLessThan(noise.byteLength * 1.001);
    const disk = imageData(4 * MiB);
    expect((await pack(disk)).byteLength).toBeLessThan(disk.byteLength / 5);
  });

  test("what goes out is cut into 256 KiB messages whatever the frames inside (a stored frame is 15 bytes longer than its piece)", async () => {
    const sizes: number[] = [];
    for await (const c of pieces(random(MiB + 100), 256 * KiB).pipeThrough(transitPacker())) sizes.push(c.byteLength);
    expect(sizes.slice(0, -1).every((n) => n === 256 * KiB)).toBe(true);
    // Four frames of two blocks (9 + 2 × 3 bytes of headers), and one of one block for the last 100 bytes.
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(MiB + 100 + 4 * 15 + 12);
  });

  test("filledWith tells empty space only: all zeros or all 0xff", () => {
    expect(filledWith(new Uint8Array(1000))).toBe(0);
    expect(filledWith(new Uint8Array(1000).fill(0xff))).toBe(0xff);
    const almost = new Uint8Array(1000);
    almost[999] = 1;
    expect(filledWith(almost)).toBeUndefined();
    expect(filledWith(new Uint8Array(1000).fill(7))).toBeUndefined();
    expect(filledWith(new Uint8Array(0))).toBeUndefined();
  });

  test("stored and RLE frames split their content into blocks of at most 128 KiB", () => {
    const data = random(300 * KiB);
    expect(sha(zstdProgram(["-dc"], storedFrame(data)))).toBe(sha(data));
    expect(storedFrame(data).byteLength).toBe(9 + 3 * 3 + data.byteLength);
    expect(repeatedFrame(0xab, 300 * KiB).byteLength).toBe(9 + 3 * 4);
    expect(zstdProgram(["-dc"], repeatedFrame(0xab, 300 * KiB)).equals(Buffer.alloc(300 * KiB, 0xab))).toBe(true);
  });
});

describe("transit unpacking of any zstd", () => {

  test("what it undoes comes in 256 KiB chunks, whatever the frames and the split: a consumer's write per chunk, not per block", async () => {
    // Stored, RLE and compressed frames (text compresses), arriving in odd pieces.
    const text = new TextEncoder().encode("the quick brown fox jumps over the lazy dog. ".repeat(6000));
    const data = Buffer.concat([random(300 * KiB + 5), new Uint8Array(200 * KiB), text, new Uint8Array(77).fill(0xff), random(1000)]);
    const sizes: number[] = [];
    const chunks: Uint8Array[] = [];
    for await (const c of unpackTransit(pieces(await pack(data, 100_000), 33_333))) {
      sizes.push(c.byteLength);
      chunks.push(c);
    }
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
    const whole = Math.floor(data.byteLength / (256 * KiB));
    expect(sizes).toEqual([...Array(whole).fill(256 * KiB), data.byteLength - whole * 256 * KiB]);
  });
  test("the zstd program's output (one frame with a checksum, compressed blocks) and a skippable frame", async () => {
    const data = imageData(2 * MiB);
    const made = zstdProgram(["-1", "-c", "--check"], data);
    const skippable = Buffer.alloc(8 + 5);
    skippable.writeUInt32LE(0x184d2a53, 0);
    skippable.writeUInt32LE(5, 4);
    expect(sha(await unpack(Buffer.concat([skippable, made, skippable, made])))).toBe(sha(Buffer.concat([data, data])));
  });

  test("a stream compressed as one frame larger than a frame of ours (clients before frames) goes to the runtime's decoder", async () => {
    const data = imageData(24 * MiB);
    const chunks = await all(pieces(data, MiB).pipeThrough(runtimeCodec(new CompressionStream("zstd" as never))));
    expect(sha(await unpack(chunks, 64 * KiB))).toBe(sha(data));
  });

  test("truncated or corrupt input errors the stream, naming zstd, and never ends it as if whole", async () => {
    const wire = await pack(random(300 * KiB));
    for (const bad of [wire.subarray(0, 3), wire.subarray(0, 7), wire.subarray(0, 100_000), wire.subarray(0, wire.byteLength - 1)]) {
      const e = await unpack(bad).then(() => undefined, (err: Error) => err);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e!.message).toContain("the zstd data is corrupt or truncated");
    }
    const garbage = await unpack(new TextEncoder().encode("not zstd at all")).then(() => undefined, (err: Error) => err);
    expect(garbage!.message).toContain("does not start with zstd's magic number");
    // A compressed frame whose body is damaged fails in the runtime's decoder, and says so the same way.
    const made = Buffer.from(zstdProgram(["-1", "-c"], imageData(MiB)));
    made.fill(0x5a, 40, 200);
    const damaged = await unpack(made).then(() => undefined, (err: Error) => err);
    expect(damaged).toBeInstanceOf(InvalidArgumentError);
    expect(damaged!.message).toContain("the zstd data is corrupt or truncated");
  });

  test("a frame that needs a dictionary is refused", async () => {
    const frame = Buffer.from(storedFrame(new Uint8Array(10)));
    // Descriptor with a 1-byte dictionary id, then the id: the header grows by one byte.
    const withDictionary = Buffer.concat([frame.subarray(0, 4), Buffer.from([frame[4]! | 0x01, 7]), frame.subarray(5)]);
    const e = await unpack(withDictionary).then(() => undefined, (err: Error) => err);
    expect(e!.message).toContain("needs a dictionary");
  });
});
