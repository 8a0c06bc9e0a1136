/**
 * serveRoutes' keepalive and graceful close, with a small Connect service and a
 * raw route, over gRPC as peers speak it: what open and new calls are told, how
 * long a close waits, and a silent peer dropped by PING.
 */
import { afterEach, expect, test } from "bun:test";
import * as http2 from "node:http2";
import { Code, createClient, type ConnectRouter } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ExporterService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { tcpRelay } from "../router/test-router.ts";
import { outcome } from "./call-outcome.ts";
import { statusTrailers } from "./grpc-raw.ts";
import { type RawHandler, type Served, type ServeOptions, serveRoutes } from "./http2-server.ts";
import { Logger } from "./log.ts";
import { eventually } from "../common/eventually.ts";

const DRAIN = { message: "the test server is shutting down", graceMs: 2_000 };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * LogStream sends one message, then waits for its signal and ends cleanly, as a
 * session's does; GetStatus waits `slowMs` whatever happens, or with 0 until its
 * signal aborts and then throws the AbortError a driver would.
 */
function routes(slowMs: { value: number }) {
  return (r: ConnectRouter) => r.service(ExporterService, {
    async *logStream(_req, ctx) {
      yield { message: "hello" };
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    },
    async driverCall() {
      return {};
    },
    async getStatus(_req, ctx) {
      if (slowMs.value > 0) await Bun.sleep(slowMs.value);
      else await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true }));
      return {};
    },
  });
}

async function serve(opts: ServeOptions & { slowMs?: number } = {}): Promise<{ served: Served; client: ReturnType<typeof createClient<typeof ExporterService>>; lines: string[] }> {
  const lines: string[] = [];
  const served = await serveRoutes(routes({ value: opts.slowMs ?? 0 }), { host: "127.0.0.1", port: 0 }, {
    log: new Logger("test", (r) => lines.push(`${r.level}: ${r.message}`)),
    ...opts,
  });
  cleanups.push(() => served.close());
  const client = createClient(ExporterService, createGrpcTransport({ baseUrl: `http://${served.address}` }));
  return { served, client, lines };
}

/** An open LogStream: resolves `first` once its first message is in. */
function openLogStream(client: ReturnType<typeof createClient<typeof ExporterService>>) {
  let first!: () => void;
  const firstIn = new Promise<void>((r) => (first = r));
  const end = outcome((async () => {
    for await (const _ of client.logStream({})) first();
  })());
  return { first: firstIn, end };
}

test("a drain ends an open stream with UNAVAILABLE and the message even when its handler ends cleanly, and a cancelled call says the same", async () => {
  const { served, client } = await serve();
  const stream = openLogStream(client);
  await stream.first;
  const cancelled = outcome(client.getStatus({}));
  await Bun.sleep(50);
  expect(served.openCalls).toBe(2);
  const t0 = performance.now();
  await served.close(DRAIN);
  expect(performance.now() - t0).toBeLessThan(500);
  expect(await stream.end).toBe("Unavailable: the test server is shutting down");
  expect(await cancelled).toBe("Unavailable: the test server is shutting down");
});

test("while a drain waits for a call to finish, a new call is refused with UNAVAILABLE and the message; the open call finishes OK", async () => {
  const { served, client } = await serve({ slowMs: 400 });
  const slow = outcome(client.getStatus({}));
  await Bun.sleep(50);
  const closed = served.close(DRAIN);
  // A fresh connection, as a new peer would make.
  const late = createClient(ExporterService, createGrpcTransport({ baseUrl: `http://${served.address}` }));
  expect(await outcome(late.getReport({}))).toBe("Unavailable: the test server is shutting down");
  expect(await outcome(client.getReport({}))).toBe("Unavailable: the test server is shutting down");
  expect(await slow).toBe("OK");
  await closed;
});

test("a raw route's shutdown hook is called with the message; a raw call arriving meanwhile is refused as gRPC UNAVAILABLE", async () => {
  const told: string[] = [];
  const held: http2.Http2ServerResponse[] = [];
  const raw: RawHandler = Object.assign((_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    res.writeHead(200, { "content-type": "application/grpc" });
    held.push(res);
  }, {
    shutdown: (message: string) => {
      told.push(message);
      setTimeout(() => {
        for (const res of held) {
          res.addTrailers(statusTrailers(Code.Unavailable, message));
          res.end();
        }
      }, 300);
    },
  });
  const { served } = await serve({ raw: { "/raw/Call": raw } });
  const session = http2.connect(`http://${served.address}`);
  cleanups.push(async () => void session.destroy());
  const call = () => {
    const req = session.request({ ":method": "POST", ":path": "/raw/Call", "content-type": "application/grpc", te: "trailers" });
    req.end();
    return new Promise<string>((resolve) => {
      let status = "";
      req.on("response", (h) => (status = String(h["grpc-status"] ?? "")));
      req.on("trailers", (t) => (status = `${String(t["grpc-status"])} ${String(t["grpc-message"])}`));
      req.on("close", () => resolve(status));
      req.resume();
    });
  };
  const open = call();
  await Bun.sleep(50);
  const closed = served.close(DRAIN);
  expect(told).toEqual([DRAIN.message]);
  // Trailers-only: the status is in the headers.
  expect(await call()).toBe("14");
  expect(await open).toBe(`14 ${DRAIN.message}`);
  await closed;
});

test("a call still open after the grace is cut, and the close says how many", async () => {
  const { served, client, lines } = await serve({ slowMs: 60_000 });
  // Not awaited: a call whose connection is destroyed before its answer never settles in connect-node under Bun.
  void outcome(client.getStatus({}));
  await Bun.sleep(50);
  const t0 = performance.now();
  await served.close({ ...DRAIN, graceMs: 300 });
  const ms = performance.now() - t0;
  expect(ms).toBeGreaterThanOrEqual(290);
  expect(ms).toBeLessThan(1000);
  expect(lines).toContain("warn: 1 call still open after 300 ms: closing their connections");
  await Bun.sleep(50);
  expect(served.openCalls).toBe(0);
});

test("keepalive: a peer that stops answering PINGs is dropped, which ends its calls", async () => {
  const { served, lines } = await serve({ keepalive: { intervalMs: 200, timeoutMs: 200 } });
  const relay = await tcpRelay(served.address);
  cleanups.push(() => relay.close());
  const client = createClient(ExporterService, createGrpcTransport({ baseUrl: `http://${relay.endpoint}` }));
  const stream = openLogStream(client);
  await stream.first;
  await Bun.sleep(600);
  expect(served.openCalls).toBe(1);
  const t0 = performance.now();
  relay.blackhole();
  while (served.openCalls > 0 && performance.now() - t0 < 5_000) await Bun.sleep(10);
  const ms = performance.now() - t0;
  console.log(`silent peer dropped after ${Math.round(ms)} ms (PING every 200 ms, 200 ms to answer)`);
  expect(served.openCalls).toBe(0);
  expect(ms).toBeLessThan(200 + 200 + 300);
  expect(lines.some((l) => /^warn: no answer to a keepalive PING from 127\.0\.0\.1:\d+ within 200 ms: closing its connection$/.test(l))).toBe(true);
});

/** Opens a call on raw route `bulk` or not, then silences the connection: how long until the server drops it. */
async function silencedAfter(bulk: boolean): Promise<number> {
  const held: http2.Http2ServerResponse[] = [];
  const raw: RawHandler = Object.assign((_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    res.writeHead(200, { "content-type": "application/grpc" });
    held.push(res);
  }, { bulk });
  const { served } = await serve({ raw: { "/raw/Stream": raw }, keepalive: { intervalMs: 200, timeoutMs: 200, bulkTimeoutMs: 1500 } });
  const relay = await tcpRelay(served.address);
  cleanups.push(() => relay.close());
  const session = http2.connect(`http://${relay.endpoint}`);
  cleanups.push(async () => void session.destroy());
  const req = session.request({ ":method": "POST", ":path": "/raw/Stream", "content-type": "application/grpc", te: "trailers" });
  req.on("error", () => {});
  await new Promise((resolve) => req.once("response", resolve));
  const t0 = performance.now();
  relay.blackhole();
  await eventually(() => expect(served.openCalls).toBe(0), { what: "the silent connection to be dropped", timeout: 5_000, interval: 20 });
  return performance.now() - t0;
}

test("keepalive: a connection that has carried a byte stream (a bulk raw route) gets bulkTimeoutMs to answer a PING", async () => {
  const ms = await silencedAfter(true);
  console.log(`silent bulk connection dropped after ${Math.round(ms)} ms (PING every 200 ms, 1500 ms to answer)`);
  expect(ms).toBeGreaterThan(1500);
  expect(ms).toBeLessThan(1500 + 200 + 500);
});

test("keepalive: a raw route that answers calls (not bulk) leaves its connection the usual time to answer", async () => {
  // An exporter's connection to the controller makes only such calls (Register, ReportStatus, its Status stream).
  const ms = await silencedAfter(false);
  expect(ms).toBeLessThan(200 + 200 + 500);
});

test("a request larger than 4 MiB is refused with ResourceExhausted, not read whole", async () => {
  const { client } = await serve();
  const big = "x".repeat(5 * 2 ** 20);
  expect(await outcome(client.driverCall({ uuid: "u", method: "m", args: [{ kind: { case: "stringValue", value: big } }] }))).toStartWith("ResourceExhausted: ");
  expect(await outcome(client.driverCall({ uuid: "u", method: "m", args: [] }))).toBe("OK");
});
