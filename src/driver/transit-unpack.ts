/**
 * zstd that came compressed on the way (TRANSIT_ENCODING, see resource.ts) back to
 * the bytes it was. Frames of stored and RLE blocks, which is what transit-pack.ts
 * makes of data that does not compress and of empty space, are undone here: stored
 * blocks copied, RLE blocks as a fill, into 256 KiB buffers (gathered.ts). Frames
 * with compressed blocks go to the runtime's decoder one at a time. The runtime's
 * decoder was the bound: it undid a disk image at ~300–400 MB/s, where the `zstd`
 * program does 5 GB/s.
 *
 * A frame larger than MAX_FRAME_BYTES (a sender that compressed the whole stream as
 * one frame, as this project's clients did before transit-pack.ts) is not gathered:
 * the rest of the stream, from that frame on, goes through the runtime's streaming
 * decoder.
 */
import { decode } from "./encoding.ts";
import { InvalidArgumentError } from "./errors.ts";
import { Gathered } from "./gathered.ts";

/** The largest frame gathered whole; ours are 256 KiB of content at most. */
const MAX_FRAME_BYTES = 4 * 2 ** 20;

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte size, then that much to skip. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

const RAW_BLOCK = 0;
const RLE_BLOCK = 1;
const COMPRESSED_BLOCK = 2;

/** `data` (zstd, in frames) undone. A corrupt or truncated input errors the stream, never ends it. */
export function unpackTransit(data: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const input = new Pending(data.getReader());
  const output = frames(input);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await output.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        controller.error(e instanceof InvalidArgumentError ? e : new InvalidArgumentError(`the zstd data is corrupt or truncated: ${message}`));
        void input.cancel(e);
      }
    },
    cancel: (reason) => input.cancel(reason),
  }, { highWaterMark: 0 });
}

function corrupt(why: string): InvalidArgumentError {
  return new InvalidArgumentError(`the zstd data is corrupt or truncated: ${why}`);
}

async function* frames(input: Pending): AsyncGenerator<Uint8Array> {
  const out = new Gathered();
  for (;;) {
    if (!(await input.fill(1))) break;
    if (!(await input.fill(4))) throw corrupt("it ends inside a frame's magic number");
    const magic = input.u32(0);
    if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
      if (!(await input.fill(8))) throw corrupt("it ends inside a skippable frame");
      await input.skip(8 + input.u32(4));
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw corrupt("a frame does not start with zstd's magic number");
    const frame = await scan(input);
    if (frame === "too large") {
      // From this frame on, the runtime's streaming decoder does it all.
      yield* out.rest();
      yield* decode(input.rest(), "zstd");
      return;
    }
    if (frame.compressed) {
      yield* out.put(await Bun.zstdDecompress(input.gather(frame.length)));
      continue;
    }
    await input.skip(frame.headerBytes);
    for (const block of frame.blocks) {
      await input.skip(3);
      if (block.type === RAW_BLOCK) {
        for (const piece of input.take(block.size)) yield* out.put(piece);
      } else {
        const byte = input.u8(0);
        await input.skip(1);
        yield* out.fill(byte, block.size);
      }
    }
    await input.skip(frame.checksumBytes);
  }
  yield* out.rest();
}

interface Scanned {
  /** The whole frame, header to checksum. */
  length: number;
  headerBytes: number;
  checksumBytes: number;
  /** Any block compressed: the runtime's decoder undoes the frame. */
  compressed: boolean;
  blocks: { type: number; size: number }[];
}

/** The frame at the front of `input` (its magic checked), read in but not taken. */
async function scan(input: Pending): Promise<Scanned | "too large"> {
  if (!(await input.fill(5))) throw corrupt("it ends inside a frame header");
  const descriptor = input.u8(4);
  if (descriptor & 0x08) throw corrupt("a frame header has its reserved bit set");
  const single = (descriptor & 0x20) !== 0;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const sizeBytes = [single ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
  const headerBytes = 5 + (single ? 0 : 1) + dictionaryBytes + sizeBytes;
  if (!(await input.fill(headerBytes))) throw corrupt("it ends inside a frame header");
  for (let i = 0; i < dictionaryBytes; i++) {
    if (input.u8(5 + (single ? 0 : 1) + i) !== 0) throw corrupt("a frame needs a dictionary");
  }
  const blocks: Scanned["blocks"] = [];
  let compressed = false;
  let at = headerBytes;
  for (let last = false; !last;) {
    if (!(await input.fill(at + 3))) throw corrupt("it ends inside a block header");
    const header = input.u8(at) | (input.u8(at + 1) << 8) | (input.u8(at + 2) << 16);
    last = (header & 1) === 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type > COMPRESSED_BLOCK) throw corrupt("a block of the reserved type");
    if (type === COMPRESSED_BLOCK) compressed = true;
    blocks.push({ type, size });
    at += 3 + (type === RLE_BLOCK ? 1 : size);
    if (at > MAX_FRAME_BYTES) return "too large";
  }
  const checksumBytes = descriptor & 0x04 ? 4 : 0;
  if (!(await input.fill(at + checksumBytes))) throw corrupt("it ends inside a frame");
  return { length: at + checksumBytes, headerBytes, checksumBytes, compressed, blocks };
}

type Reader = { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> };

/** What has arrived and is not yet taken: chunks as they came, read on demand. */
class Pending {
  private chunks: Uint8Array[] = [];
  /** Where the unread part of chunks[0] starts. */
  private offset = 0;
  private length = 0;
  private ended = false;

  constructor(private readonly reader: Reader) {}

  /** Reads until `n` bytes are here; false if the input ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.length < n) {
      if (this.ended) return false;
      const { done, value } = await this.reader.read();
      if (done || !value) {
        this.ended = true;
        return false;
      }
      if (value.byteLength > 0) {
        this.chunks.push(value);
        this.length += value.byteLength;
      }
    }
    return true;
  }

  u8(at: number): number {
    let i = 0;
    let pos = at + this.offset;
    while (pos >= this.chunks[i]!.byteLength) pos -= this.chunks[i++]!.byteLength;
    return this.chunks[i]![pos]!;
  }

  u32(at: number): number {
    return (this.u8(at) | (this.u8(at + 1) << 8) | (this.u8(at + 2) << 16) | (this.u8(at + 3) << 24)) >>> 0;
  }

  /** The next `n` bytes (which are here) as views of what arrived. */
  *take(n: number): Generator<Uint8Array> {
    while (n > 0) {
      const first = this.chunks[0]!;
      const piece = first.subarray(this.offset, this.offset + n);
      this.advance(piece.byteLength);
      n -= piece.byteLength;
      yield piece;
    }
  }

  /** The next `n` bytes (which are here) in one buffer. */
  gather(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.advance(n);
      return view;
    }
    const whole = Buffer.allocUnsafe(n);
    let to = 0;
    for (const piece of this.take(n)) {
      whole.set(piece, to);
      to += piece.byteLength;
    }
    return whole;
  }

  /** Drops the next `n` bytes, reading them in if need be. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.length === 0 && !(await this.fill(1))) throw corrupt("it ends inside a frame");
      const here = Math.min(n, this.chunks[0]!.byteLength - this.offset);
      this.advance(here);
      n -= here;
    }
  }

  /** What is here and what is still to come, as one stream. */
  rest(): ReadableStream<Uint8Array> {
    const here = [...this.take(this.length)];
    const reader = this.reader;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = here.shift();
        if (next) return controller.enqueue(next);
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
  }

  cancel(reason?: unknown): Promise<void> {
    return this.reader.cancel(reason).catch(() => {});
  }

  private advance(n: number): void {
    this.offset += n;
    this.length -= n;
    while (this.chunks.length > 0 && this.offset >= this.chunks[0]!.byteLength) {
      this.offset -= this.chunks[0]!.byteLength;
      this.chunks.shift();
    }
  }
}
