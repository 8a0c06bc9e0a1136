/**
 * serveUnary as a raw route of serveRoutes, called by Connect's gRPC client (the
 * client jmp uses, and a strict reader of gRPC answers): replies, gzip requests,
 * the size cap, deadlines, cancellation, a drain, and Connect taking the
 * protocols serveUnary leaves to it.
 */
import { afterEach, expect, test } from "bun:test";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  type DriverCallRequest, DriverCallRequestSchema, type DriverCallResponse, DriverCallResponseSchema, ExporterService,
} from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { outcome } from "./call-outcome.ts";
import { grpcTimeoutMs, isGrpc, serveUnary } from "./grpc-unary.ts";
import { type RawHandler, serveRoutes } from "./http2-server.ts";

const PATH = "/jumpstarter.v1.ExporterService/DriverCall";
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * The raw route answers `method: "echo"` with its uuid, "slow" when its signal
 * aborts (saying why), and "fail" with NotFound; Connect's route answers every
 * call with uuid "connect", so a test sees who answered.
 */
async function start(maxBytes = 1024) {
  const stop = new AbortController();
  const seen: { aborted?: unknown } = {};
  const handler: RawHandler = Object.assign((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    serveUnary(req, res, {
      decode: (b) => fromBinary(DriverCallRequestSchema, b),
      encode: (r: DriverCallResponse) => toBinary(DriverCallResponseSchema, r),
      handle: async (r: DriverCallRequest, signal) => {
        if (r.method === "fail") throw new ConnectError("no such driver", Code.NotFound);
        if (r.method === "slow") {
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          seen.aborted = signal.reason;
          throw signal.reason;
        }
        return create(DriverCallResponseSchema, { uuid: r.uuid });
      },
      failed: (e) => ConnectError.from(e),
      stop: stop.signal,
      maxBytes,
    });
  }, { accepts: isGrpc, shutdown: (m: string) => stop.abort(new ConnectError(m, Code.Unavailable)) });
  const served = await serveRoutes((r) => r.service(ExporterService, { driverCall: () => ({ uuid: "connect" }) }), { host: "127.0.0.1", port: 0 }, {
    raw: { [PATH]: handler },
  });
  cleanups.push(() => served.close());
  const baseUrl = `http://${served.address}`;
  const grpc = createClient(ExporterService, createGrpcTransport({ baseUrl }));
  return { served, seen, baseUrl, grpc };
}

test("a gRPC call gets the raw route's reply; gRPC-Web and Connect callers get Connect's", async () => {
  const s = await start();
  expect((await s.grpc.driverCall({ uuid: "u1", method: "echo" })).uuid).toBe("u1");
  const connect = createClient(ExporterService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "2" }));
  expect((await connect.driverCall({ uuid: "u1", method: "echo" })).uuid).toBe("connect");
});

test("a gzip-compressed request is read; an error thrown by the handler is the call's status", async () => {
  const s = await start();
  const gz = createClient(ExporterService, createGrpcTransport({ baseUrl: s.baseUrl, sendCompression: (await import("@connectrpc/connect-node")).compressionGzip, compressMinBytes: 0 }));
  expect((await gz.driverCall({ uuid: "zipped", method: "echo" })).uuid).toBe("zipped");
  expect(await outcome(s.grpc.driverCall({ uuid: "u", method: "fail" }))).toBe("NotFound: no such driver");
});

test("a request over the size cap is RESOURCE_EXHAUSTED", async () => {
  const s = await start(64);
  expect(await outcome(s.grpc.driverCall({ uuid: "x".repeat(200), method: "echo" }))).toBe("ResourceExhausted: message size is larger than configured readMaxBytes 64");
});

test("grpc-timeout ends the call with DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
  const s = await start();
  // By hand: Connect's client would enforce the deadline itself and reset the stream first.
  const session = http2.connect(s.baseUrl);
  cleanups.push(() => void session.close());
  const msg = toBinary(DriverCallRequestSchema, create(DriverCallRequestSchema, { uuid: "u", method: "slow" }));
  const body = new Uint8Array(5 + msg.byteLength);
  new DataView(body.buffer).setUint32(1, msg.byteLength);
  body.set(msg, 5);
  const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", "grpc-timeout": "80m" });
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("trailers", resolve));
  req.end(body);
  req.resume();
  expect(await trailers).toMatchObject({ "grpc-status": String(Code.DeadlineExceeded) });
  expect(s.seen.aborted).toMatchObject({ code: Code.DeadlineExceeded });
  expect(grpcTimeoutMs("150m")).toBe(150);
  expect(grpcTimeoutMs("2S")).toBe(2000);
  expect(grpcTimeoutMs("10u")).toBe(1);
  expect(grpcTimeoutMs("12x")).toBeUndefined();
});

test("a client that cancels aborts the handler's signal with CANCELED", async () => {
  const s = await start();
  const abort = new AbortController();
  const call = outcome(s.grpc.driverCall({ uuid: "u", method: "slow" }, { signal: abort.signal }));
  await Bun.sleep(100);
  abort.abort();
  expect(await call).toStartWith("Canceled:");
  for (let i = 0; i < 50 && !s.seen.aborted; i++) await Bun.sleep(10);
  expect(s.seen.aborted).toMatchObject({ code: Code.Canceled });
});

test("a drain ends a call in flight with its UNAVAILABLE status", async () => {
  const s = await start();
  const call = outcome(s.grpc.driverCall({ uuid: "u", method: "slow" }));
  await Bun.sleep(100);
  await s.served.close({ message: "going away", graceMs: 1000 });
  expect(await call).toBe("Unavailable: going away");
  expect(s.seen.aborted).toMatchObject({ code: Code.Unavailable });
});
