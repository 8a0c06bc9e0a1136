/**
 * Raw data compressed on the way (TRANSIT_ENCODING, see resource.ts): a flash's image
 * as a client sends it, a dump as an exporter sends it back. A zstd stream that any zstd
 * decoder undoes (transit-unpack.ts undoes it fastest): zstd frames for each piece, a
 * few bytes for empty space, compressed where a sample of the data shrinks, stored as
 * it is otherwise.
 *
 * Decided piece by piece, since an exporter cannot look at a disk before its driver
 * reads it, and a disk is both: empty space (which zstd makes ~16x smaller at several
 * GB/s) beside compressed or encrypted filesystems (which zstd's level 1 only slows
 * down, to ~150–400 MB/s per core here, and far less on a Raspberry Pi). A stored
 * frame costs a few header bytes and one copy, into the buffers that go out.
 */
import { Gathered } from "./gathered.ts";

/**
 * The most of a chunk that goes into one frame: a frame is compressed whole or not
 * at all. A driver's chunks are as large as a session's messages (a storage driver
 * writes 256 KiB at a time).
 */
const PIECE_BYTES = 256 * 1024;

/** The sample: this many slices of SLICE_BYTES, spread over the piece. */
const SLICES = 4;
const SLICE_BYTES = 4096;

/** Compressed only if the sample shrinks by a quarter, as the client's flash sample (storage/transfer.ts). */
const WORTH = 0.75;

/** A stored ("raw") block holds at most 128 KiB (RFC 8878, Block_Maximum_Size). */
const BLOCK_BYTES = 128 * 1024;

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
/** Magic, descriptor and a 4-byte content size. */
const FRAME_HEAD_BYTES = 9;
const BLOCK_HEAD_BYTES = 3;

/** The chunks as zstd frames: write plain data, read zstd. */
export function transitPacker(): TransformStream<Uint8Array, Uint8Array> {
  const sample = new Uint8Array(SLICES * SLICE_BYTES);
  const out = new Gathered();
  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      for (let at = 0; at < chunk.byteLength; at += PIECE_BYTES) {
        for (const part of await packPiece(chunk.subarray(at, at + PIECE_BYTES), sample)) {
          for (const full of out.put(part)) controller.enqueue(full);
        }
      }
    },
    flush(controller) {
      for (const rest of out.rest()) controller.enqueue(rest);
    },
  });
}

/** Empty space is looked for in windows of this size within a piece. */
const WINDOW_BYTES = 64 * 1024;

/**
 * One piece as the parts of its frames: a frame per run of empty windows, and per run
 * of data, compressed or stored. A disk's free space is scattered; a piece with 64 KiB
 * of data beside 192 KiB of zeros went compressed whole, and the runtime's decoder was
 * then the cost at the other end.
 */
async function packPiece(piece: Uint8Array, sample: Uint8Array): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  for (const { fill, data } of runs(piece)) {
    if (fill !== undefined) parts.push(repeatedFrame(fill, data.byteLength));
    // On the runtime's thread pool: this thread goes on sending what came before.
    else if (worthCompressing(data, sample)) parts.push(await Bun.zstdCompress(data, { level: 1 }));
    else parts.push(...storedFrameParts(data));
  }
  return parts;
}

/** `piece` cut into runs of windows: of one fill byte each, or of data. */
function runs(piece: Uint8Array): { fill?: number; data: Uint8Array }[] {
  const whole = filledWith(piece);
  if (whole !== undefined) return [{ fill: whole, data: piece }];
  const found: { fill?: number; data: Uint8Array }[] = [];
  let start = 0;
  let kind: number | undefined;
  for (let at = 0; at < piece.byteLength; at += WINDOW_BYTES) {
    const here = filledWith(piece.subarray(at, at + WINDOW_BYTES));
    if (at > 0 && here !== kind) {
      found.push({ fill: kind, data: piece.subarray(start, at) });
      start = at;
    }
    kind = here;
  }
  found.push({ fill: kind, data: piece.subarray(start) });
  return found;
}

/**
 * Bytes a disk's empty space is filled with: zeros, or 0xff (erased flash). Made at
 * first use: this module loads with every client, and most never transfer a byte.
 */
let fills: Buffer[] | undefined;

/**
 * The byte `piece` is all made of, if it is empty space. Sent as an RLE frame, a few
 * bytes that a client undoes with a fill: ~2x faster than zstd's own encoding of
 * zeros, and the runtime's decoder is what it saves (it undid that at ~300–400 MB/s).
 */
export function filledWith(piece: Uint8Array): number | undefined {
  if (piece.byteLength === 0) return undefined;
  fills ??= [0x00, 0xff].map((byte) => Buffer.alloc(PIECE_BYTES, byte));
  const fill = fills.find((f) => f[0] === piece[0]);
  if (!fill || piece.byteLength > fill.byteLength) return undefined;
  // Buffer's equals is one memcmp.
  return Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength).equals(fill.subarray(0, piece.byteLength)) ? fill[0] : undefined;
}

/** Whether `piece` would shrink enough, judged by compressing a sample of it (~16 KiB into `scratch`). */
export function worthCompressing(piece: Uint8Array, scratch: Uint8Array): boolean {
  let taken: Uint8Array;
  if (piece.byteLength <= scratch.byteLength) {
    taken = piece;
  } else {
    const step = Math.floor((piece.byteLength - SLICE_BYTES) / (SLICES - 1));
    for (let i = 0; i < SLICES; i++) scratch.set(piece.subarray(i * step, i * step + SLICE_BYTES), i * SLICE_BYTES);
    taken = scratch;
  }
  return Bun.zstdCompressSync(taken, { level: 1 }).byteLength < taken.byteLength * WORTH;
}

/**
 * `data` as one zstd frame of stored blocks, in parts: its headers, and views of `data`
 * between them. The frame header says its content size, in one segment (no window
 * descriptor), with no checksum: HTTP/2 and TLS already guard the bytes.
 */
export function storedFrameParts(data: Uint8Array): Uint8Array[] {
  const blocks = blockCount(data.byteLength);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < blocks; i++) {
    const from = i * BLOCK_BYTES;
    const size = Math.min(BLOCK_BYTES, data.byteLength - from);
    const head = i === 0 ? frameHead(data.byteLength, BLOCK_HEAD_BYTES) : Buffer.allocUnsafe(BLOCK_HEAD_BYTES);
    blockHead(head, head.byteLength - BLOCK_HEAD_BYTES, RAW_BLOCK, size, i === blocks - 1);
    parts.push(head, data.subarray(from, from + size));
  }
  return parts;
}

/** The same frame in one buffer. */
export function storedFrame(data: Uint8Array): Uint8Array {
  return Buffer.concat(storedFrameParts(data));
}

/** `size` bytes of `byte` as one zstd frame of RLE blocks (a block header and the byte each). */
export function repeatedFrame(byte: number, size: number): Uint8Array {
  const blocks = blockCount(size);
  const frame = frameHead(size, blocks * (BLOCK_HEAD_BYTES + 1));
  for (let i = 0, to = FRAME_HEAD_BYTES; i < blocks; i++, to += BLOCK_HEAD_BYTES + 1) {
    blockHead(frame, to, RLE_BLOCK, Math.min(BLOCK_BYTES, size - i * BLOCK_BYTES), i === blocks - 1);
    frame[to + BLOCK_HEAD_BYTES] = byte;
  }
  return frame;
}

const RAW_BLOCK = 0;
const RLE_BLOCK = 1;

function blockCount(size: number): number {
  if (size > 0xffffffff) throw new RangeError("a frame of ours holds at most 4 GiB");
  return Math.max(1, Math.ceil(size / BLOCK_BYTES));
}

/** A buffer of the frame header for `size` content bytes, and `more` bytes after it. */
function frameHead(size: number, more: number): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEAD_BYTES + more);
  head.set(MAGIC, 0);
  // Frame_Header_Descriptor: Frame_Content_Size in 4 bytes (flag 2), Single_Segment.
  head[4] = (2 << 6) | (1 << 5);
  head.writeUInt32LE(size, 5);
  return head;
}

/** Block_Header at `to`, little-endian: Last_Block (bit 0), Block_Type (bits 1–2), Block_Size (bits 3–23). */
function blockHead(into: Buffer, to: number, type: number, size: number, last: boolean): void {
  into.writeUIntLE(size * 8 + type * 2 + (last ? 1 : 0), to, BLOCK_HEAD_BYTES);
}
