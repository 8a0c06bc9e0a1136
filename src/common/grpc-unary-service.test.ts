/**
 * rawUnaryRoutes beside Connect's routes of the same implementation, called by
 * Connect's gRPC client: the raw route answers gRPC through the interceptors, with
 * the request's headers, context values, response headers, errors, a caller's
 * cancel and a drain as Connect's route would; other protocols still go to Connect.
 */
import { afterEach, expect, test } from "bun:test";
import type * as http2 from "node:http2";
import { Code, ConnectError, createClient, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { type DriverCallRequest, ExporterService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { outcome } from "./call-outcome.ts";
import { rawUnaryRoutes } from "./grpc-unary-service.ts";
import { MAX_REQUEST_BYTES, type RawHandler, serveRoutes } from "./http2-server.ts";

const PATH = "/jumpstarter.v1.ExporterService/DriverCall";
const WHO = createContextKey("nobody", { description: "set by the interceptor" });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start() {
  const seen: { aborted?: unknown; intercepted: number; raw: number } = { intercepted: 0, raw: 0 };
  // Refuses a call that sends x-deny, and tells the handler who called: as the controller's auth does.
  const interceptor: Interceptor = (next) => async (req) => {
    seen.intercepted++;
    if (req.header.get("x-deny") !== null) throw new ConnectError("denied", Code.PermissionDenied);
    req.contextValues.set(WHO, req.header.get("x-who") ?? "anonymous");
    return next(req);
  };
  const impl = {
    // A plain object, not a message: Connect accepts both, and so must the raw route.
    driverCall: async (req: DriverCallRequest, ctx: HandlerContext) => {
      if (req.method === "fail") throw new ConnectError("no such driver", Code.NotFound);
      if (req.method === "slow") {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        seen.aborted = ctx.signal.reason;
        throw ctx.signal.reason;
      }
      ctx.responseHeader.set("x-answered", req.uuid);
      return { uuid: `${ctx.protocolName}:${ctx.values.get(WHO)}:${req.uuid}` };
    },
  };
  const route = rawUnaryRoutes(ExporterService, impl, ["DriverCall"], { interceptors: [interceptor], maxBytes: MAX_REQUEST_BYTES })[PATH]!;
  const counted: RawHandler = Object.assign((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    seen.raw++;
    route(req, res);
  }, { accepts: route.accepts, shutdown: route.shutdown });
  const served = await serveRoutes((r) => r.service(ExporterService, impl), { host: "127.0.0.1", port: 0 }, {
    interceptors: [interceptor],
    raw: { [PATH]: counted },
  });
  cleanups.push(() => served.close());
  const baseUrl = `http://${served.address}`;
  const grpc = createClient(ExporterService, createGrpcTransport({ baseUrl }));
  return { served, seen, baseUrl, grpc };
}

test("a gRPC call is answered by the raw route through the interceptors, with its headers both ways", async () => {
  const s = await start();
  const answered: { header?: string | null } = {};
  const reply = await s.grpc.driverCall({ uuid: "u1" }, { headers: { "x-who": "alice" }, onHeader: (h) => (answered.header = h.get("x-answered")) });
  expect(reply.uuid).toBe("grpc:alice:u1");
  expect(answered.header).toBe("u1");
  expect(s.seen).toMatchObject({ raw: 1, intercepted: 1 });
  // The Connect protocol on the same path is Connect's: same handler, its own protocol.
  const connect = createClient(ExporterService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "2" }));
  expect((await connect.driverCall({ uuid: "u2" })).uuid).toBe("connect:anonymous:u2");
  expect(s.seen).toMatchObject({ raw: 1, intercepted: 2 });
});

test("an interceptor's refusal and a handler's error are the call's status", async () => {
  const s = await start();
  expect(await outcome(s.grpc.driverCall({ uuid: "u" }, { headers: { "x-deny": "1" } }))).toBe("PermissionDenied: denied");
  expect(await outcome(s.grpc.driverCall({ uuid: "u", method: "fail" }))).toBe("NotFound: no such driver");
  expect(s.seen.raw).toBe(2);
});

test("a caller's cancel aborts the handler's signal; a drain ends a call in flight with UNAVAILABLE", async () => {
  const s = await start();
  const abort = new AbortController();
  const cancelled = outcome(s.grpc.driverCall({ uuid: "u", method: "slow" }, { signal: abort.signal }));
  await Bun.sleep(100);
  abort.abort();
  expect(await cancelled).toStartWith("Canceled:");
  for (let i = 0; i < 50 && !s.seen.aborted; i++) await Bun.sleep(10);
  expect(s.seen.aborted).toMatchObject({ code: Code.Canceled });

  s.seen.aborted = undefined;
  const call = outcome(s.grpc.driverCall({ uuid: "u", method: "slow" }));
  await Bun.sleep(100);
  await s.served.close({ message: "going away", graceMs: 1000 });
  expect(await call).toBe("Unavailable: going away");
  expect(s.seen.aborted).toMatchObject({ code: Code.Unavailable });
});
