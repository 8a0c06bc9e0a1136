/**
 * What a driver writes towards a client that takes it compressed on the way (a dump
 * through a network, see TRANSIT_ENCODING in driver/resource.ts), as a zstd stream
 * the client decodes with any zstd decoder: one zstd frame per piece, compressed
 * when a sample of the piece shrinks, stored as it is otherwise.
 *
 * Decided piece by piece, since the exporter cannot look at a disk before its driver
 * reads it, and a disk is both: empty space (which zstd makes ~16x smaller at several
 * GB/s) beside compressed or encrypted filesystems (which zstd's level 1 only slows
 * down, to ~150–400 MB/s per core here, and far less on a Raspberry Pi). A stored
 * frame costs a few header bytes and a copy.
 */

/**
 * The most of a chunk that goes into one frame: a frame is compressed whole or not
 * at all. A driver's chunks are as large as a session's messages (a storage driver
 * writes 256 KiB at a time), and buffers of this size are cheap to allocate afresh.
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
  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      for (let at = 0; at < chunk.byteLength; at += PIECE_BYTES) {
        const piece = chunk.subarray(at, at + PIECE_BYTES);
        const fill = filledWith(piece);
        if (fill !== undefined) {
          controller.enqueue(repeatedFrame(fill, piece.byteLength));
        } else if (worthCompressing(piece, sample)) {
          // On the runtime's thread pool: this thread goes on sending what came before.
          controller.enqueue(await Bun.zstdCompress(piece, { level: 1 }));
        } else {
          controller.enqueue(storedFrame(piece));
        }
      }
    },
  });
}

/** Bytes a disk's empty space is filled with: zeros, or 0xff (erased flash). */
const FILLS = [0x00, 0xff].map((byte) => Buffer.alloc(PIECE_BYTES, byte));

/**
 * The byte `piece` is all made of, if it is empty space. Sent as an RLE frame, a few
 * bytes that a client undoes with a fill: ~2x faster than zstd's own encoding of
 * zeros, and the runtime's decoder is what it saves (it undid that at ~300–400 MB/s).
 */
export function filledWith(piece: Uint8Array): number | undefined {
  if (piece.byteLength === 0) return undefined;
  const fill = FILLS.find((f) => f[0] === piece[0]);
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
 * `data` as one zstd frame of stored blocks, copied into one buffer: a frame in
 * parts (headers beside views of `data`) made four gRPC messages of each 256 KiB
 * piece, and cost more than the copy. The frame header says its content size, in
 * one segment (no window descriptor), with no checksum: HTTP/2 and TLS already
 * guard the bytes.
 */
export function storedFrame(data: Uint8Array): Uint8Array {
  return frameOf(data.byteLength, RAW_BLOCK, (frame, to, from, size) => {
    frame.set(data.subarray(from, from + size), to);
    return size;
  });
}

/** `size` bytes of `byte` as one zstd frame of RLE blocks (a block header and the byte each). */
export function repeatedFrame(byte: number, size: number): Uint8Array {
  return frameOf(size, RLE_BLOCK, (frame, to) => {
    frame[to] = byte;
    return 1;
  });
}

const RAW_BLOCK = 0;
const RLE_BLOCK = 1;

/** A frame of `size` content bytes in blocks of `type`, each block's body put in by `body` (which says its length). */
function frameOf(size: number, type: number, body: (frame: Buffer, to: number, from: number, size: number) => number): Uint8Array {
  if (size > 0xffffffff) throw new RangeError("a frame of ours holds at most 4 GiB");
  const blocks = Math.max(1, Math.ceil(size / BLOCK_BYTES));
  const bodies = type === RAW_BLOCK ? size : blocks;
  const frame = Buffer.allocUnsafe(FRAME_HEAD_BYTES + blocks * BLOCK_HEAD_BYTES + bodies);
  frame.set(MAGIC, 0);
  // Frame_Header_Descriptor: Frame_Content_Size in 4 bytes (flag 2), Single_Segment.
  frame[4] = (2 << 6) | (1 << 5);
  frame.writeUInt32LE(size, 5);
  let to = FRAME_HEAD_BYTES;
  for (let i = 0; i < blocks; i++) {
    const from = i * BLOCK_BYTES;
    const blockSize = Math.min(BLOCK_BYTES, size - from);
    // Block_Header, little-endian: Last_Block (bit 0), Block_Type (bits 1–2), Block_Size (bits 3–23).
    frame.writeUIntLE(blockSize * 8 + type * 2 + (i === blocks - 1 ? 1 : 0), to, BLOCK_HEAD_BYTES);
    to += BLOCK_HEAD_BYTES;
    to += body(frame, to, from, blockSize);
  }
  return frame;
}
