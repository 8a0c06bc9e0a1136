/**
 * Bytes copied into fresh buffers of OUT_BYTES, each passed on once full: what the
 * transit packer sends (transit-pack.ts) and what its unpacker hands on
 * (transit-unpack.ts). On both sides the pieces are smaller than a message and cut
 * across its edges: a stored frame is its piece plus 15 bytes of headers, a stored
 * block at most 128 KiB. Passed on as they came, each 256 KiB went out as about
 * three chunks, and each chunk costs its consumer a message or a write (a dump's
 * file, a flash's disk). One copy costs less, and a fill (an RLE block) needs no
 * buffer of its own.
 */

/** The size of what is passed on. */
const OUT_BYTES = 256 * 1024;

export class Gathered {
  private buffer: Buffer | undefined;
  private filled = 0;

  /** `data` copied in; yields each buffer it fills. */
  *put(data: Uint8Array): Generator<Uint8Array> {
    for (let at = 0; at < data.byteLength;) {
      const buffer = (this.buffer ??= Buffer.allocUnsafe(OUT_BYTES));
      const n = Math.min(data.byteLength - at, OUT_BYTES - this.filled);
      buffer.set(data.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === OUT_BYTES) yield this.take();
    }
  }

  /** `size` bytes of `byte`; yields each buffer it fills. */
  *fill(byte: number, size: number): Generator<Uint8Array> {
    while (size > 0) {
      const buffer = (this.buffer ??= Buffer.allocUnsafe(OUT_BYTES));
      const n = Math.min(size, OUT_BYTES - this.filled);
      buffer.fill(byte, this.filled, this.filled + n);
      this.filled += n;
      size -= n;
      if (this.filled === OUT_BYTES) yield this.take();
    }
  }

  /** The buffer begun, if any: at the end of the input. */
  *rest(): Generator<Uint8Array> {
    if (this.filled > 0) yield this.take();
  }

  private take(): Buffer {
    const full = this.buffer!;
    this.buffer = undefined;
    const filled = this.filled;
    this.filled = 0;
    return filled === OUT_BYTES ? full : full.subarray(0, filled);
  }
}

