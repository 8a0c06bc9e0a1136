/**
 * rawServerStreamRoutes beside Connect's routes of the same implementation, called by
 * Connect's gRPC client: the raw route streams through the interceptors, with the
 * request's headers, context values, response headers and trailers, errors before and
 * after the first message, a caller's cancel, a drain and a reader slower than the
 * writer as Connect's route would; other protocols still go to Connect.
 */
import { afterEach, expect, test } from "bun:test";
import type * as http2 from "node:http2";
import { Code, ConnectError, createClient, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ControllerService, type ListenRequest } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { outcome } from "./call-outcome.ts";
import { rawServerStreamRoutes } from "./grpc-server-stream.ts";
import { MAX_REQUEST_BYTES, type RawHandler, serveRoutes } from "./http2-server.ts";

const PATH = "/jumpstarter.v1.ControllerService/Listen";
const WHO = createContextKey("nobody", { description: "set by the interceptor" });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start() {
  const seen: { aborted?: unknown; stopped: number; intercepted: number; raw: number } = { stopped: 0, intercepted: 0, raw: 0 };
  const interceptor: Interceptor = (next) => async (req) => {
    seen.intercepted++;
    if (req.header.get("x-deny") !== null) throw new ConnectError("denied", Code.PermissionDenied);
    req.contextValues.set(WHO, req.header.get("x-who") ?? "anonymous");
    return next(req);
  };
  const impl = {
    // Plain objects, not messages: Connect accepts both, and so must the raw route.
    listen: async function* (req: ListenRequest, ctx: HandlerContext) {
      const [what, n] = req.leaseName.split(":");
      try {
        if (what === "fail-first") throw new ConnectError("no such lease", Code.NotFound);
        ctx.responseHeader.set("x-answered", what!);
        ctx.responseTrailer.set("x-count", n ?? "0");
        for (let i = 0; i < Number(n ?? 0); i++) {
          yield { routerEndpoint: `${ctx.protocolName}:${ctx.values.get(WHO)}:${i}`, routerToken: what === "big" ? "x".repeat(64 * 1024) : "" };
        }
        if (what === "fail-later") throw new ConnectError("the lease ended badly", Code.FailedPrecondition);
        if (what === "wait") {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          seen.aborted = ctx.signal.reason;
        }
      } finally {
        seen.stopped++;
      }
    },
  };
  const route = rawServerStreamRoutes(ControllerService, impl, ["Listen"], { interceptors: [interceptor], maxBytes: MAX_REQUEST_BYTES })[PATH]!;
  const counted: RawHandler = Object.assign((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    seen.raw++;
    route(req, res);
  }, { accepts: route.accepts, shutdown: route.shutdown });
  const served = await serveRoutes((r) => r.service(ControllerService, impl), { host: "127.0.0.1", port: 0 }, {
    interceptors: [interceptor],
    raw: { [PATH]: counted },
  });
  cleanups.push(() => served.close());
  const baseUrl = `http://${served.address}`;
  const grpc = createClient(ControllerService, createGrpcTransport({ baseUrl }));
  return { served, seen, baseUrl, grpc };
}

async function collect(stream: AsyncIterable<{ routerEndpoint: string; routerToken: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const m of stream) out.push(m.routerEndpoint);
  return out;
}

test("a gRPC stream is served by the raw route through the interceptors: its messages in order, headers and trailers", async () => {
  const s = await start();
  const got: { header?: string | null; trailer?: string | null } = {};
  const messages = await collect(s.grpc.listen({ leaseName: "ok:3" }, {
    headers: { "x-who": "alice" },
    onHeader: (h) => (got.header = h.get("x-answered")),
    onTrailer: (t) => (got.trailer = t.get("x-count")),
  }));
  expect(messages).toEqual(["grpc:alice:0", "grpc:alice:1", "grpc:alice:2"]);
  expect(got).toEqual({ header: "ok", trailer: "3" });
  expect(s.seen).toMatchObject({ raw: 1, intercepted: 1, stopped: 1 });
  // A stream that ends without a message is a complete, empty answer.
  expect(await collect(s.grpc.listen({ leaseName: "ok:0" }))).toEqual([]);
  // The Connect protocol on the same path is Connect's: same handler, its own protocol.
  const connect = createClient(ControllerService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: "2" }));
  expect(await collect(connect.listen({ leaseName: "ok:1" }))).toEqual(["connect:anonymous:0"]);
  expect(s.seen).toMatchObject({ raw: 2, intercepted: 3 });
});

test("an interceptor's refusal, an error before the first message and one after it are the stream's status", async () => {
  const s = await start();
  expect(await outcome(collect(s.grpc.listen({ leaseName: "ok:1" }, { headers: { "x-deny": "1" } })))).toBe("PermissionDenied: denied");
  expect(await outcome(collect(s.grpc.listen({ leaseName: "fail-first" })))).toBe("NotFound: no such lease");
  const later: string[] = [];
  const failed = outcome((async () => {
    for await (const m of s.grpc.listen({ leaseName: "fail-later:2" })) later.push(m.routerEndpoint);
  })());
  expect(await failed).toBe("FailedPrecondition: the lease ended badly");
  expect(later).toEqual(["grpc:anonymous:0", "grpc:anonymous:1"]);
});

test("a reader slower than the writer gets every message, in order: each write past the peer's window waits for its drain", async () => {
  const s = await start();
  let n = 0;
  for await (const m of s.grpc.listen({ leaseName: "big:300" })) {
    expect(m.routerEndpoint).toBe(`grpc:anonymous:${n++}`);
    if (n % 50 === 0) await Bun.sleep(20);
  }
  expect(n).toBe(300);
});

test("a caller's cancel aborts the handler's signal and stops its generator; a drain ends a stream with UNAVAILABLE", async () => {
  const s = await start();
  const abort = new AbortController();
  const cancelled = outcome(collect(s.grpc.listen({ leaseName: "wait:1" }, { signal: abort.signal })));
  await Bun.sleep(100);
  abort.abort();
  expect(await cancelled).toStartWith("Canceled:");
  for (let i = 0; i < 50 && s.seen.stopped === 0; i++) await Bun.sleep(10);
  expect(s.seen.aborted).toMatchObject({ code: Code.Canceled });
  expect(s.seen.stopped).toBe(1);

  s.seen.aborted = undefined;
  const streaming = outcome(collect(s.grpc.listen({ leaseName: "wait:1" })));
  await Bun.sleep(100);
  await s.served.close({ message: "going away", graceMs: 1000 });
  expect(await streaming).toBe("Unavailable: going away");
  expect(s.seen.aborted).toMatchObject({ code: Code.Unavailable });
  expect(s.seen.stopped).toBe(2);
});
