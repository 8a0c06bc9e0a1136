import { describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStatus, headersStatus, statusTrailers } from "./grpc-raw.ts";

const codeOf = (e: ConnectError | undefined) => (e ? { code: Code[e.code], message: e.rawMessage } : "OK");

describe("endStatus, as connect-es reads the end of a gRPC response", () => {
  test("OK, and an error with its message, round-trip through statusTrailers", () => {
    expect(codeOf(endStatus(statusTrailers(0)))).toBe("OK");
    expect(codeOf(endStatus(statusTrailers(Code.Unavailable, "router gone: 100% sure")))).toEqual({ code: "Unavailable", message: "router gone: 100% sure" });
    expect(codeOf(endStatus({ "grpc-status": "5" }, "not found, no message"))).toEqual({ code: "NotFound", message: "not found, no message" });
  });

  test("no status at all (a stream cut before its trailers) is an Internal protocol error, never OK", () => {
    expect(codeOf(endStatus(undefined))).toEqual({ code: "Internal", message: "protocol error: missing status" });
    expect(codeOf(endStatus({ ":status": "200" }))).toEqual({ code: "Internal", message: "protocol error: missing status" });
  });

  test("a status gRPC does not define is an Internal protocol error", () => {
    for (const bad of ["99", "-1", "1.5", "OK", ""]) {
      expect(codeOf(endStatus({ "grpc-status": bad }))).toEqual({ code: "Internal", message: `protocol error: invalid grpc-status: ${bad}` });
    }
  });
});

test("headersStatus: only headers that carry a non-OK status (a trailers-only answer) are an error", () => {
  expect(headersStatus({ ":status": "200", "content-type": "application/grpc" })).toBeUndefined();
  expect(headersStatus({ ":status": "200", "grpc-status": "0" })).toBeUndefined();
  expect(codeOf(headersStatus({ ":status": "200", "grpc-status": "16", "grpc-message": "bad%20token" }))).toEqual({ code: "Unauthenticated", message: "bad token" });
});
