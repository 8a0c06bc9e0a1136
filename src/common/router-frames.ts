/**
 * RouterService.Stream messages on the wire, by hand: each gRPC message is a
 * 5-byte envelope (compressed flag, big-endian length) around a protobuf
 * StreamRequest/StreamResponse, which share their fields (1: bytes payload,
 * 2: FrameType frame_type). Tunnelled bytes are the bulk of what jmp moves, and
 * the generated codec copies every payload twice on the way out and once on the
 * way in; here a payload goes out as its own buffer and comes in as a view of
 * the chunk it arrived in whenever the message did not straddle two chunks.
 */
import { gunzipSync } from "node:zlib";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { decodeGrpcMessage, encodeGrpcMessage, EnvelopeSplitter, FrameError } from "./grpc-envelope.ts";

export { decodeGrpcMessage, encodeGrpcMessage };

export const ROUTER_STREAM_PATH = "/jumpstarter.v1.RouterService/Stream";

/** A message bigger than this is refused rather than buffered: our own frames are far smaller. */
export const MAX_FRAME_BYTES = 16 * 2 ** 20;

export interface RouterFrame {
  frameType: FrameType;
  payload: Uint8Array;
}

const EMPTY: Uint8Array = new Uint8Array(0);

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function putVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * One frame as the buffers to write in order: a small head (envelope, frame
 * type, payload tag and length) and the payload itself, never copied.
 */
export function encodeFrame(frameType: FrameType, payload: Uint8Array = EMPTY): Uint8Array[] {
  const typeBytes = frameType === FrameType.DATA ? 0 : 1 + varintLength(frameType);
  const payloadHead = payload.byteLength ? 1 + varintLength(payload.byteLength) : 0;
  const messageLength = typeBytes + payloadHead + payload.byteLength;
  const head = new Uint8Array(5 + typeBytes + payloadHead);
  new DataView(head.buffer).setUint32(1, messageLength);
  let at = 5;
  if (typeBytes) {
    head[at++] = 0x10; // field 2, varint
    at = putVarint(head, at, frameType);
  }
  if (payloadHead) {
    head[at++] = 0x0a; // field 1, length-delimited
    putVarint(head, at, payload.byteLength);
    return [head, payload];
  }
  return [head];
}

export { FrameError };

function readVarint(buf: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= buf.byteLength) throw new FrameError("a router frame ends inside a varint");
    const b = buf[at++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
  throw new FrameError("a router frame has a varint longer than 10 bytes");
}

/** Parses one StreamRequest/StreamResponse; unknown fields are skipped as protobuf says. */
export function decodeMessage(msg: Uint8Array): RouterFrame {
  let frameType = FrameType.DATA;
  let payload = EMPTY;
  let at = 0;
  while (at < msg.byteLength) {
    let tag: number;
    [tag, at] = readVarint(msg, at);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      let v: number;
      [v, at] = readVarint(msg, at);
      if (field === 2) frameType = v as FrameType;
    } else if (wire === 2) {
      let len: number;
      [len, at] = readVarint(msg, at);
      if (at + len > msg.byteLength) throw new FrameError("a router frame's field runs past its end");
      if (field === 1) payload = msg.subarray(at, at + len);
      at += len;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new FrameError(`a router frame has field ${field} with wire type ${wire}, which protobuf does not define here`);
  }
  if (at > msg.byteLength) throw new FrameError("a router frame's last field runs past its end");
  return { frameType, payload };
}

/**
 * Splits a gRPC body into frames as its chunks arrive. `encoding` is the
 * peer's `grpc-encoding`: a compressed message is accepted only in gzip.
 */
export class FrameDecoder {
  private readonly envelopes = new EnvelopeSplitter(MAX_FRAME_BYTES, "a router frame");

  constructor(private readonly encoding = "identity") {}

  push(chunk: Uint8Array): RouterFrame[] {
    return this.envelopes.push(chunk).map(({ flags, message }) => {
      if (!(flags & 1)) return decodeMessage(message);
      if (this.encoding !== "gzip") throw new FrameError(`a compressed router frame in encoding '${this.encoding}', which jmp does not read`);
      return decodeMessage(gunzipSync(message));
    });
  }

  /** Bytes of an unfinished message still waiting for the rest. */
  get pending(): number {
    return this.envelopes.pending;
  }
}
