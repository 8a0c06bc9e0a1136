/**
 * gRPC's message envelope (a compressed flag and a big-endian length before each
 * message), split off a body as its chunks arrive, and grpc-message's percent
 * coding. Free of Connect and generated code: router-frames.ts's FrameDecoder and
 * `j`'s own connection (client/exporter-calls.ts) both use it.
 */

const EMPTY: Uint8Array = new Uint8Array(0);

export class FrameError extends Error {}

/** One message as it came: its flags byte (bit 0: compressed) and its bytes. */
export interface Envelope {
  flags: number;
  message: Uint8Array;
}

/**
 * The messages of a body, whole, as its chunks arrive. A message is a view of the
 * chunk it came in when one chunk holds it, else gathered into one copy. `what`
 * names a message in errors ("a router frame").
 */
export class EnvelopeSplitter {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(private readonly maxBytes: number, private readonly what: string) {}

  push(chunk: Uint8Array): Envelope[] {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    const out: Envelope[] = [];
    for (;;) {
      if (this.buffered < 5) break;
      const head = this.peek(5);
      const flags = head[0]!;
      const length = new DataView(head.buffer, head.byteOffset, 5).getUint32(1);
      if (length > this.maxBytes) throw new FrameError(`${this.what} of ${length} bytes is over the ${this.maxBytes}-byte limit`);
      if (this.buffered < 5 + length) break;
      this.take(5);
      out.push({ flags, message: this.take(length) });
    }
    return out;
  }

  /** Bytes of an unfinished message still waiting for the rest. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    return this.gather(n, false);
  }

  /** The next `n` bytes: a view when one chunk holds them, else one copy. */
  private take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.byteLength > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.byteLength === n) {
      this.chunks.shift();
      return first;
    }
    return this.gather(n, true);
  }

  private gather(n: number, consume: boolean): Uint8Array {
    // Every byte is written below, so skip the zero fill (a 64 KiB frame over
    // 16 KiB HTTP/2 chunks lands here every time).
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const part = Math.min(c.byteLength, n - filled);
      out.set(part === c.byteLength ? c : c.subarray(0, part), filled);
      filled += part;
      if (consume) {
        if (part === c.byteLength) this.chunks.shift();
        else this.chunks[0] = c.subarray(part);
      } else i++;
    }
    return out;
  }
}

/** grpc-message is percent-encoded: everything outside printable ASCII, and '%'. */
export function encodeGrpcMessage(message: string): string {
  return Array.from(new TextEncoder().encode(message), (b) =>
    b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(b),
  ).join("");
}

export function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
