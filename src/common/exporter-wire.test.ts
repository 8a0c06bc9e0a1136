/**
 * The hand codec of exporter-wire.ts against protobuf-es, the reference: the same
 * bytes out, the same values back, the same errors for values JSON cannot carry.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  DriverCallRequestSchema, DriverCallResponseSchema, GetReportResponseSchema, StreamingDriverCallResponseSchema,
} from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { fromValue, toValue } from "../driver/value.ts";
import { decodeDriverResult, decodeReports, decodeValue, encodeDriverCall, encodeValue, WireError } from "./exporter-wire.ts";

const VALUES: unknown[] = [
  null, 0, -0.5, 1e300, 2 ** 53 + 2, "", "héllo ✓", true, false,
  [], [1, "two", null, [false]], {}, { a: 1, b: { c: [null, "x"] }, "": "empty key" },
  { nested: { deeper: { deepest: [{ k: 3.25 }] } } },
];

describe("google.protobuf.Value", () => {
  test.each(VALUES.map((v) => [JSON.stringify(v), v]))("%s: decodes what protobuf-es encodes, and protobuf-es decodes ours", (_, v) => {
    const reference = toBinary(ValueSchema, toValue(v));
    expect(decodeValue(reference)).toEqual(v);
    expect(fromValue(fromBinary(ValueSchema, encodeValue(v)))).toEqual(v);
  });

  test("undefined is null, struct fields that are undefined are left out, a Date is its ISO string, toJSON is used", () => {
    const when = new Date(Date.UTC(2026, 11, 4, 12, 0, 0));
    const v = { a: undefined, b: when, c: { toJSON: () => [1, 2] }, d: 7n };
    expect(decodeValue(encodeValue(undefined))).toBeNull();
    expect(decodeValue(encodeValue(v))).toEqual({ b: "2026-12-04T12:00:00.000Z", c: [1, 2], d: 7 });
    expect(encodeValue(v)).toEqual(toBinary(ValueSchema, toValue(v)));
  });

  test("what JSON cannot carry fails as toValue fails, naming where", () => {
    for (const bad of [{ x: [1, NaN] }, { y: new Uint8Array(2) }, [() => 1], { s: Symbol("s") }, Infinity]) {
      let ours: unknown, theirs: unknown;
      try {
        encodeDriverCall("u", "m", [1, bad]);
      } catch (e) {
        ours = e;
      }
      try {
        toValue(bad, "argument 2");
      } catch (e) {
        theirs = e;
      }
      expect(ours).toBeInstanceOf(TypeError);
      expect((ours as Error).message).toBe((theirs as Error).message);
      expect((ours as Error).message).toStartWith("argument 2");
    }
  });
});

describe("ExporterService's messages", () => {
  test("a DriverCallRequest is byte for byte protobuf-es's", () => {
    const args = [1, "x", { on: true }, [null]];
    const reference = toBinary(DriverCallRequestSchema, create(DriverCallRequestSchema, {
      uuid: "6f1c", method: "set", args: args.map((a, i) => toValue(a, `argument ${i + 1}`)),
    }));
    expect(encodeDriverCall("6f1c", "set", args)).toEqual(reference);
    expect(encodeDriverCall("", "", [])).toEqual(toBinary(DriverCallRequestSchema, create(DriverCallRequestSchema)));
  });

  test("a driver call's result, unary and streaming; an absent result is null", () => {
    const unary = toBinary(DriverCallResponseSchema, create(DriverCallResponseSchema, { uuid: "u", result: toValue({ volts: 5 }) }));
    expect(decodeDriverResult(unary)).toEqual({ volts: 5 });
    const streamed = toBinary(StreamingDriverCallResponseSchema, create(StreamingDriverCallResponseSchema, { uuid: "u", result: toValue([1]) }));
    expect(decodeDriverResult(streamed)).toEqual([1]);
    expect(decodeDriverResult(toBinary(DriverCallResponseSchema, create(DriverCallResponseSchema, { uuid: "u" })))).toBeNull();
  });

  test("GetReport's reports, with optional fields absent or present, and the fields j does not read skipped", () => {
    const reference = toBinary(GetReportResponseSchema, create(GetReportResponseSchema, {
      uuid: "root", labels: { a: "b" }, motd: "hello",
      alternativeEndpoints: [{ endpoint: "x:1", certificate: "pem" }],
      reports: [
        { uuid: "r1", labels: { "jumpstarter.dev/client": "c.Composite" }, methodsDescription: {} },
        { uuid: "r2", parentUuid: "r1", labels: { "jumpstarter.dev/name": "power", k: "" }, description: "Power", methodsDescription: { on: "turn it on" } },
      ],
    }));
    expect(decodeReports(reference)).toEqual([
      { uuid: "r1", labels: { "jumpstarter.dev/client": "c.Composite" }, methodsDescription: {} },
      { uuid: "r2", parentUuid: "r1", labels: { "jumpstarter.dev/name": "power", k: "" }, description: "Power", methodsDescription: { on: "turn it on" } },
    ]);
  });

  test("malformed input is a WireError, never a wrong value", () => {
    const good = toBinary(DriverCallResponseSchema, create(DriverCallResponseSchema, { uuid: "u", result: toValue("a long enough string") }));
    // Cut anywhere inside the result field (after the uuid field, 3 bytes, the rest is a valid shorter message).
    for (let cut = 4; cut < good.byteLength; cut++) {
      expect(() => decodeDriverResult(good.subarray(0, cut))).toThrow(WireError);
    }
    expect(() => decodeValue(Uint8Array.of(0x0b))).toThrow(WireError); // wire type 3 (group start)
    expect(() => decodeValue(Uint8Array.of(0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))).toThrow(WireError);
  });
});
