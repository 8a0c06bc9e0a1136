import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FrameType, StreamRequestSchema, StreamResponseSchema } from "../gen/jumpstarter/v1/router_pb.ts";
import { decodeGrpcMessage, encodeFrame, encodeGrpcMessage, FrameDecoder, FrameError, MAX_FRAME_BYTES } from "./router-frames.ts";
import { concat, envelope } from "../testing/grpc-envelope.ts";


describe("router frames", () => {
  test("a hand-encoded frame is what the generated codec reads, for every frame type and size", () => {
    for (const frameType of [FrameType.DATA, FrameType.RST_STREAM, FrameType.PING, FrameType.GOAWAY]) {
      for (const size of [0, 1, 127, 128, 16_383, 16_384, 300_000]) {
        const payload = new Uint8Array(size).map((_, i) => i % 251);
        const wire = concat(encodeFrame(frameType, payload));
        expect(new DataView(wire.buffer).getUint32(1)).toBe(wire.byteLength - 5);
        const parsed = fromBinary(StreamResponseSchema, wire.subarray(5));
        expect(parsed.frameType).toBe(frameType);
        expect(Buffer.from(parsed.payload).equals(Buffer.from(payload))).toBe(true);
      }
    }
  });

  test("the payload goes out as the caller's own buffer, not a copy", () => {
    const payload = new Uint8Array(1000);
    const parts = encodeFrame(FrameType.DATA, payload);
    expect(parts[1]).toBe(payload);
  });

  test("decodes what the generated codec writes, split at every byte boundary", () => {
    const msgs = [
      create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new TextEncoder().encode("hello") }),
      create(StreamRequestSchema, { frameType: FrameType.GOAWAY }),
      create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new Uint8Array(200).fill(7) }),
    ];
    const wire = concat(msgs.map((m) => envelope(toBinary(StreamRequestSchema, m))));
    for (let cut = 0; cut <= wire.byteLength; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(frames.map((f) => [f.frameType, f.payload.byteLength])).toEqual([[FrameType.DATA, 5], [FrameType.GOAWAY, 0], [FrameType.DATA, 200]]);
      expect(d.pending).toBe(0);
    }
  });

  test("a message inside one chunk comes back as a view of that chunk", () => {
    const chunk = concat(encodeFrame(FrameType.DATA, new Uint8Array(64).fill(1)));
    const [frame] = new FrameDecoder().push(chunk);
    expect(frame!.payload.buffer).toBe(chunk.buffer);
  });

  test("unknown fields are skipped; gzip frames are read when the peer said gzip", () => {
    // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then the payload
    const msg = new Uint8Array([0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 2, 9, 9, 0x65, 1, 2, 3, 4, 0x0a, 2, 0x68, 0x69, 0x10, 6]);
    const [frame] = new FrameDecoder().push(envelope(msg));
    expect(frame).toEqual({ frameType: FrameType.PING, payload: new TextEncoder().encode("hi") });
    const [zipped] = new FrameDecoder("gzip").push(envelope(gzipSync(msg), 1));
    expect(new TextDecoder().decode(zipped!.payload)).toBe("hi");
  });

  test("bad input is refused with a FrameError that says what is wrong", () => {
    const cases: [FrameDecoder, Uint8Array, RegExp][] = [
      [new FrameDecoder(), envelope(new Uint8Array([0x0a, 10, 1])), /runs past its end/],
      [new FrameDecoder(), envelope(new Uint8Array([0x0b])), /wire type 3/],
      [new FrameDecoder(), envelope(new Uint8Array([0x10, 0x80])), /ends inside a varint/],
      [new FrameDecoder(), envelope(new Uint8Array([1]), 1), /compressed router frame in encoding 'identity'/],
      [new FrameDecoder(), new Uint8Array([0, 0xff, 0xff, 0xff, 0xff]), new RegExp(`over the ${MAX_FRAME_BYTES}-byte limit`)],
    ];
    for (const [decoder, wire, message] of cases) {
      let err: unknown;
      try {
        decoder.push(wire);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FrameError);
      expect((err as Error).message).toMatch(message);
    }
  });

  test("grpc-message is percent-encoded both ways", () => {
    const text = "the other side went away: 100% gone, ünïcode\nnext";
    const encoded = encodeGrpcMessage(text);
    expect(encoded).toMatch(/^[\x20-\x7e]+$/);
    expect(encoded).toContain("100%25 gone");
    expect(decodeGrpcMessage(encoded)).toBe(text);
  });
});
