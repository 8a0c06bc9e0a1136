import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { FrameType, StreamRequestSchema } from "../gen/jumpstarter/v1/router_pb.ts";
import { PiecewiseFrameDecoder } from "./data-frames.ts";
import { encodeFrame, FrameDecoder, FrameError, MAX_FRAME_BYTES } from "./router-frames.ts";
import { concat, envelope } from "../testing/grpc-envelope.ts";

/** What each decoder makes of `chunks`, as [frame type, payload bytes] pairs. */
const piecewise = (chunks: Uint8Array[], encoding?: string) => {
  const d = new PiecewiseFrameDecoder(encoding);
  const frames = chunks.flatMap((c) => d.push(c)).map((f) => [f.frameType, [...concat(f.pieces)]]);
  return { frames, pending: d.pending };
};
const whole = (chunks: Uint8Array[], encoding?: string) => {
  const d = new FrameDecoder(encoding);
  const frames = chunks.flatMap((c) => d.push(c)).map((f) => [f.frameType, [...f.payload]]);
  return { frames, pending: d.pending };
};
const split = (wire: Uint8Array, size: number) => {
  const out: Uint8Array[] = [];
  for (let at = 0; at < wire.byteLength; at += size) out.push(wire.subarray(at, at + size));
  return out;
};

describe("piecewise frame decoder", () => {
  test("a DATA frame over many chunks comes out as views of those chunks, not one copy", () => {
    const payload = new Uint8Array(256 * 1024).map((_, i) => i % 253);
    const chunks = split(concat(encodeFrame(FrameType.DATA, payload)), 16 * 1024);
    const d = new PiecewiseFrameDecoder();
    const frames = chunks.flatMap((c) => d.push(c));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.frameType).toBe(FrameType.DATA);
    expect(Buffer.from(concat(frames[0]!.pieces)).equals(Buffer.from(payload))).toBe(true);
    expect(frames[0]!.pieces.length).toBe(chunks.length);
    for (const piece of frames[0]!.pieces) expect(chunks.some((c) => c.buffer === piece.buffer)).toBe(true);
    expect(d.pending).toBe(0);
  });

  test("reads what FrameDecoder reads, split at every byte boundary", () => {
    const msgs = [
      create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new TextEncoder().encode("hello") }),
      create(StreamRequestSchema, { frameType: FrameType.GOAWAY }),
      create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new Uint8Array(200).fill(7) }),
      // upstream writes the payload first, the type after it: not the fast path's shape
      create(StreamRequestSchema, { frameType: FrameType.PING, payload: new Uint8Array([1, 2, 3]) }),
      create(StreamRequestSchema, { frameType: FrameType.DATA }),
    ];
    const wire = concat([...msgs.map((m) => envelope(toBinary(StreamRequestSchema, m))), ...encodeFrame(FrameType.DATA, new Uint8Array(300).fill(9))]);
    for (let cut = 0; cut <= wire.byteLength; cut++) {
      const chunks = [wire.subarray(0, cut), wire.subarray(cut)];
      expect(piecewise(chunks)).toEqual(whole(chunks));
    }
    for (const size of [1, 2, 3, 7, 64]) expect(piecewise(split(wire, size))).toEqual(whole(split(wire, size)));
    expect(piecewise([wire]).frames.map(([t]) => t)).toEqual([FrameType.DATA, FrameType.GOAWAY, FrameType.DATA, FrameType.PING, FrameType.DATA, FrameType.DATA]);
  });

  test("messages that only look like a lone payload take the general path", () => {
    // the payload field twice (the last wins in protobuf), and a payload followed by an unknown field
    const twice = new Uint8Array([0x0a, 1, 0x41, 0x0a, 2, 0x42, 0x43]);
    const trailing = new Uint8Array([0x0a, 1, 0x41, 0x48, 0x05]);
    const wire = concat([envelope(twice), envelope(trailing)]);
    for (let cut = 0; cut <= wire.byteLength; cut++) {
      const chunks = [wire.subarray(0, cut), wire.subarray(cut)];
      expect(piecewise(chunks)).toEqual(whole(chunks));
    }
    expect(piecewise([wire]).frames).toEqual([[FrameType.DATA, [0x42, 0x43]], [FrameType.DATA, [0x41]]]);
  });

  test("gzip frames are read when the peer said gzip, refused otherwise; oversized and malformed ones are refused", () => {
    const msg = toBinary(StreamRequestSchema, create(StreamRequestSchema, { payload: new Uint8Array([5, 6]) }));
    const zipped = envelope(gzipSync(msg), 1);
    expect(piecewise([zipped], "gzip").frames).toEqual([[FrameType.DATA, [5, 6]]]);
    expect(() => new PiecewiseFrameDecoder().push(zipped)).toThrow(FrameError);
    const huge = new Uint8Array(5);
    new DataView(huge.buffer).setUint32(1, MAX_FRAME_BYTES + 1);
    expect(() => new PiecewiseFrameDecoder().push(huge)).toThrow(FrameError);
    // a payload field whose length runs past the message
    expect(() => new PiecewiseFrameDecoder().push(envelope(new Uint8Array([0x0a, 9, 1])))).toThrow(FrameError);
  });

  test("an unfinished message waits for the rest", () => {
    const wire = concat(encodeFrame(FrameType.DATA, new Uint8Array(100).fill(3)));
    const d = new PiecewiseFrameDecoder();
    expect(d.push(wire.subarray(0, 50))).toEqual([]);
    expect(d.pending).toBe(50);
    const [frame] = d.push(wire.subarray(50));
    expect(concat(frame!.pieces)).toEqual(new Uint8Array(100).fill(3));
  });
});
