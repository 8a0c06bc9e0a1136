/**
 * A FrameDecoder (router-frames.ts) for the receiving end of a bulk byte stream:
 * a DATA frame's payload comes out as the views of the chunks it arrived in,
 * never copied into one buffer. HTTP/2 hands over at most 16 KiB at a time, so
 * every 256 KiB frame of a flash straddled 16 chunks and FrameDecoder gathered
 * it into a fresh buffer: the copy and the new pages were a third of the
 * exporter's CPU for a flash. What is on the wire does not change.
 *
 * Only the shape that carries bulk data takes the fast path: an uncompressed
 * message whose one field is the payload (field 1), which is how our encoder and
 * upstream's (proto3 leaves the DATA frame type out) write a DATA frame. Any
 * other message is gathered and parsed by router-frames.ts's decodeMessage, so
 * both decoders accept and refuse exactly the same input.
 */
import { gunzipSync } from "node:zlib";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { decodeMessage, FrameError, MAX_FRAME_BYTES } from "./router-frames.ts";

export interface PiecewiseFrame {
  frameType: FrameType;
  /** The payload, in order; empty pieces are left out. */
  pieces: Uint8Array[];
}

/** Envelope (5) + payload tag (1) + the longest varint a length under 2^32 needs (5). */
const PREFIX = 11;

export class PiecewiseFrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(private readonly encoding = "identity") {}

  push(chunk: Uint8Array): PiecewiseFrame[] {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.byteLength;
    }
    const frames: PiecewiseFrame[] = [];
    while (this.buffered >= 5) {
      const head = this.copyOut(Math.min(PREFIX, this.buffered));
      const compressed = head[0]! & 1;
      // By hand: `.buffer` of a small view makes the engine give it its own ArrayBuffer.
      const length = head[1]! * 2 ** 24 + (head[2]! << 16) + (head[3]! << 8) + head[4]!;
      if (length > MAX_FRAME_BYTES) throw new FrameError(`a router frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.buffered < 5 + length) break;
      const payloadAt = compressed ? -1 : payloadOffset(head, length);
      this.skip(5);
      if (payloadAt >= 0) {
        this.skip(payloadAt - 5);
        frames.push({ frameType: FrameType.DATA, pieces: this.take(length - (payloadAt - 5)) });
        continue;
      }
      let msg = concat(this.take(length), length);
      if (compressed) {
        if (this.encoding !== "gzip") throw new FrameError(`a compressed router frame in encoding '${this.encoding}', which jmp does not read`);
        msg = gunzipSync(msg);
      }
      const { frameType, payload } = decodeMessage(msg);
      frames.push({ frameType, pieces: payload.byteLength ? [payload] : [] });
    }
    return frames;
  }

  /** Bytes of an unfinished message still waiting for the rest. */
  get pending(): number {
    return this.buffered;
  }

  /** A copy of the next `n` buffered bytes (n is small), leaving them buffered. */
  private copyOut(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let filled = 0;
    for (let i = 0; filled < n; i++) {
      const c = this.chunks[i]!;
      const part = Math.min(c.byteLength, n - filled);
      out.set(c.subarray(0, part), filled);
      filled += part;
    }
    return out;
  }

  private skip(n: number): void {
    this.take(n);
  }

  /** The next `n` bytes as views of the chunks they are in. */
  private take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.byteLength <= n) {
        out.push(c);
        this.chunks.shift();
        n -= c.byteLength;
      } else {
        out.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
    return out;
  }
}

/**
 * Where the payload starts (from the envelope's start) when the message of
 * `length` bytes is exactly one field 1 (length-delimited) and nothing else;
 * -1 for any other shape.
 */
function payloadOffset(head: Uint8Array, length: number): number {
  if (length === 0 || head.byteLength < 6 || head[5] !== 0x0a) return -1;
  let value = 0;
  let scale = 1;
  for (let at = 6; at < head.byteLength; at++) {
    const b = head[at]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value === length - (at - 4) ? at + 1 : -1;
    scale *= 128;
  }
  return -1;
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
