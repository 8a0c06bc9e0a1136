import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FrameType, RouterService, type StreamRequest, StreamRequestSchema, type StreamResponse } from "../gen/jumpstarter/v1/router_pb.ts";
import { Logger } from "../common/log.ts";
import { serveRoutes, type Served } from "../common/http2-server.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { routerHandler } from "./router.ts";

const verify = async (token: string) => {
  const m = /^good-(.+)$/.exec(token);
  if (!m) throw new Error("signature does not match");
  // Subjects named once-* carry an expiry, as the controller's tokens do.
  return { subject: m[1]!, lease: "lease-1", expiresAt: m[1]!.startsWith("once-") ? new Date(Date.now() + 60_000) : undefined };
};

const logs: string[] = [];
let dir: string;
let served: Served;
let client: ReturnType<typeof createClient<typeof RouterService>>;

let socket: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-router-test-"));
  socket = join(dir, "router.sock");
  const handler = routerHandler({ verify, pairTimeoutMs: 300, log: new Logger("router", (r) => logs.push(`${r.level}: ${r.message}`)) });
  served = await serveRoutes(() => {}, { unix: socket }, { raw: { [ROUTER_STREAM_PATH]: handler } });
  client = createClient(RouterService, createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => net.connect(socket) },
  }));
});

afterAll(async () => {
  await served.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One caller of RouterService.Stream: frames we push, frames we read. */
function openSide(token: string | undefined, via = client) {
  const queue: StreamRequest[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  async function* requests() {
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  const abort = new AbortController();
  const responses = via.stream(requests(), {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: abort.signal,
  })[Symbol.asyncIterator]();
  return {
    send(frameType: FrameType, text = "") {
      queue.push(create(StreamRequestSchema, { frameType, payload: new TextEncoder().encode(text) }));
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    cancel() {
      abort.abort();
      responses.next().catch(() => {});
    },
    async next(): Promise<{ type: FrameType; text: string } | "end"> {
      const r: IteratorResult<StreamResponse> = await responses.next();
      return r.done ? "end" : { type: r.value.frameType, text: new TextDecoder().decode(r.value.payload) };
    },
  };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

describe("router", () => {
  test("pairs two streams with the same token and copies frames both ways, half-close included", async () => {
    const client = openSide("good-s1");
    const exporter = openSide("good-s1");
    client.send(FrameType.DATA, "hello");
    expect(await exporter.next()).toEqual({ type: FrameType.DATA, text: "hello" });
    exporter.send(FrameType.DATA, "world");
    expect(await client.next()).toEqual({ type: FrameType.DATA, text: "world" });
    expect(logs).toContain("info: stream s1 (lease lease-1): paired");
    // Frames travel verbatim, whatever their type.
    client.send(FrameType.PING);
    expect(await exporter.next()).toEqual({ type: FrameType.PING, text: "" });

    // The client is done sending; the exporter can still answer.
    client.send(FrameType.GOAWAY);
    client.end();
    expect(await exporter.next()).toEqual({ type: FrameType.GOAWAY, text: "" });
    exporter.send(FrameType.DATA, "late answer");
    expect(await client.next()).toEqual({ type: FrameType.DATA, text: "late answer" });
    exporter.send(FrameType.GOAWAY);
    exporter.end();
    expect(await client.next()).toEqual({ type: FrameType.GOAWAY, text: "" });
    // Both directions done: both calls end cleanly.
    expect(await client.next()).toBe("end");
    expect(await exporter.next()).toBe("end");
  });

  test("carries many frames in order", async () => {
    const a = openSide("good-bulk");
    const b = openSide("good-bulk");
    for (let i = 0; i < 500; i++) a.send(FrameType.DATA, `frame ${i}`);
    a.end();
    b.end();
    for (let i = 0; i < 500; i++) expect(await b.next()).toEqual({ type: FrameType.DATA, text: `frame ${i}` });
    expect(await b.next()).toBe("end");
    expect(await a.next()).toBe("end");
  });

  test("refuses a missing or invalid token", async () => {
    const none = await failure(openSide(undefined).next());
    expect(none.code).toBe(Code.Unauthenticated);
    expect(none.rawMessage).toContain("authorization: Bearer");
    const bad = await failure(openSide("forged").next());
    expect(bad.code).toBe(Code.Unauthenticated);
    expect(bad.rawMessage).toBe("invalid router token: signature does not match");
  });

  test("a stream whose peer never comes times out with a clear message", async () => {
    const t0 = performance.now();
    const e = await failure(openSide("good-lonely").next());
    expect(e.code).toBe(Code.DeadlineExceeded);
    expect(e.rawMessage).toContain("stream lonely (lease lease-1): the other side did not connect to the router within");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(logs).toContain("warn: stream lonely (lease lease-1): the other side did not connect within 300ms");
    // The table is clean again: two new streams with that token pair.
    const a = openSide("good-lonely");
    const b = openSide("good-lonely");
    a.send(FrameType.DATA, "x");
    expect(await b.next()).toEqual({ type: FrameType.DATA, text: "x" });
    a.cancel();
    b.cancel();
  });

  test("a third stream with the same token is refused", async () => {
    const a = openSide("good-crowd");
    const b = openSide("good-crowd");
    a.send(FrameType.DATA, "ping");
    expect(await b.next()).toEqual({ type: FrameType.DATA, text: "ping" });
    const third = await failure(openSide("good-crowd").next());
    expect(third.code).toBe(Code.AlreadyExists);
    expect(third.rawMessage).toContain("already has both of its sides");
    // The pair is untouched.
    b.send(FrameType.DATA, "pong");
    expect(await a.next()).toEqual({ type: FrameType.DATA, text: "pong" });
    a.cancel();
    b.cancel();
  });

  test("a token with an expiry cannot be used again after its pair ended", async () => {
    const a = openSide("good-once-1");
    const b = openSide("good-once-1");
    a.end();
    b.end();
    expect(await a.next()).toBe("end");
    expect(await b.next()).toBe("end");
    const again = await failure(openSide("good-once-1").next());
    expect(again.code).toBe(Code.AlreadyExists);
  });

  test("when one side goes away the other side's call fails", async () => {
    const a = openSide("good-gone");
    const b = openSide("good-gone");
    a.send(FrameType.DATA, "before");
    expect(await b.next()).toEqual({ type: FrameType.DATA, text: "before" });
    a.cancel();
    const e = await failure(b.next());
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toContain("the other side of the stream");
  });

  test("anything but a gRPC POST is refused with 415 and a line saying why", async () => {
    const session = http2.connect("http://localhost", { createConnection: () => net.connect(socket) });
    try {
      const req = session.request({ ":method": "POST", ":path": ROUTER_STREAM_PATH, "content-type": "application/json" });
      req.end("{}");
      const [status, body] = await new Promise<[unknown, string]>((resolve, reject) => {
        let status: unknown;
        let body = "";
        req.on("response", (h) => (status = h[":status"]));
        req.on("data", (d: Buffer) => (body += d.toString()));
        req.on("end", () => resolve([status, body]));
        req.on("error", reject);
      });
      expect(status).toBe(415);
      expect(body).toContain("the router speaks gRPC only");
    } finally {
      session.close();
    }
  });
});

describe("router, when something unforeseen fails", () => {
  test("a pair that fails ends both sides at once with Internal 'internal error', logs the original, and releases the token", async () => {
    // Standing in for any fault we did not foresee: writing the log line at pairing
    // throws (stderr gone), once.
    const lines: string[] = [];
    let thrown = false;
    const log = new Logger("router", (r) => {
      if (r.message.endsWith(": paired") && !thrown) {
        thrown = true;
        throw new Error("stderr is gone");
      }
      lines.push(`${r.level}: ${r.message}`);
    });
    const path = join(dir, "faulty-router.sock");
    const faulty = await serveRoutes(() => {}, { unix: path }, { raw: { [ROUTER_STREAM_PATH]: routerHandler({ verify, pairTimeoutMs: 60_000, log }) } });
    const via = createClient(RouterService, createGrpcTransport({ baseUrl: "http://localhost", nodeOptions: { createConnection: () => net.connect(path) } }));
    try {
      const t0 = performance.now();
      const a = openSide("good-boom", via);
      a.send(FrameType.DATA, "first");
      const b = openSide("good-boom", via);
      const [ea, eb] = await Promise.all([failure(a.next()), failure(b.next())]);
      // Neither waited for a deadline (the first side's pair timeout is a minute).
      expect(performance.now() - t0).toBeLessThan(5000);
      for (const e of [ea, eb]) expect({ code: Code[e.code], message: e.rawMessage }).toEqual({ code: "Internal", message: "internal error" });
      expect(lines).toContain("error: stream boom (lease lease-1): internal error (Error: stderr is gone)");

      // Released: the same token pairs again.
      const c = openSide("good-boom", via);
      const d = openSide("good-boom", via);
      c.send(FrameType.DATA, "again");
      expect(await d.next()).toEqual({ type: FrameType.DATA, text: "again" });
      c.cancel();
      d.cancel();
    } finally {
      await faulty.close();
    }
  });
});

describe("router shutdown", () => {
  test("ends both sides of a pair and a waiting stream with UNAVAILABLE and the message, then refuses new streams", async () => {
    const lines: string[] = [];
    const path = join(dir, "stopping-router.sock");
    const handler = routerHandler({ verify, pairTimeoutMs: 60_000, log: new Logger("router", (r) => lines.push(`${r.level}: ${r.message}`)) });
    const stopping = await serveRoutes(() => {}, { unix: path }, { raw: { [ROUTER_STREAM_PATH]: handler } });
    const via = createClient(RouterService, createGrpcTransport({ baseUrl: "http://localhost", nodeOptions: { createConnection: () => net.connect(path) } }));
    try {
      const a = openSide("good-stop", via);
      const b = openSide("good-stop", via);
      a.send(FrameType.DATA, "before");
      expect(await b.next()).toEqual({ type: FrameType.DATA, text: "before" });
      const alone = openSide("good-alone", via);
      alone.send(FrameType.DATA, "anyone?");
      await Bun.sleep(50);

      const t0 = performance.now();
      handler.shutdown("the router is shutting down");
      const ends = await Promise.all([a, b, alone].map((s) => failure(s.next())));
      expect(performance.now() - t0).toBeLessThan(1000);
      for (const e of ends) expect({ code: Code[e.code], message: e.rawMessage }).toEqual({ code: "Unavailable", message: "the router is shutting down" });
      expect(lines).toContain("info: shutting down: ended 1 pair of streams and 1 stream waiting for a peer with UNAVAILABLE");

      // The server still listens; the router itself refuses.
      const late = await failure(openSide("good-late", via).next());
      expect({ code: Code[late.code], message: late.rawMessage }).toEqual({ code: "Unavailable", message: "the router is shutting down" });
    } finally {
      await stopping.close();
    }
  });
});
