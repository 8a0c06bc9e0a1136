/**
 * Two sockets joined through a real router over TLS, one pipe on each side, as
 * the client's tunnel and the exporter agent do.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import type { RunningRouter } from "../router/run.ts";
import { silentListener, startTestRouter, tcpRelay, throwawayCert, type TestRouter } from "../router/test-router.ts";
import { writeFrame } from "./grpc-raw.ts";
import { pipeSocketThroughRouter } from "./router-pipe.ts";
import type { TlsSettings } from "./tls.ts";

let router: RunningRouter;
let trust: TlsSettings;

let testRouter: TestRouter;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-pipe-test-"));
  testRouter = await startTestRouter("lease-pipe");
  router = testRouter.router;
  trust = testRouter.trust;
});

afterAll(async () => {
  await testRouter?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A connected pair of sockets on a Unix socket: `app` is what a program holds,
 * `piped` is what goes into the router.
 */
async function socketPair(name: string): Promise<{ app: net.Socket; piped: net.Socket; close(): void }> {
  const path = join(dir, `${name}.sock`);
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(path, r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const app = net.connect({ path, allowHalfOpen: true });
  const piped = await accepted;
  return { app, piped, close: () => server.close() };
}

function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    socket.on("end", () => resolve(Buffer.concat(chunks)));
    socket.on("error", reject);
  });
}

describe("pipeSocketThroughRouter", () => {
  test("bytes go both ways and a half-close reaches the other side while it still answers", async () => {
    const a = await socketPair("a1");
    const b = await socketPair("b1");
    const pipes = [
      pipeSocketThroughRouter(a.piped, { endpoint: router.address, token: "t1", tls: trust }),
      pipeSocketThroughRouter(b.piped, { endpoint: router.address, token: "t1", tls: trust }),
    ];
    const aGot = collect(a.app);
    const bGot = collect(b.app);
    a.app.end("question"); // A is done sending, and waits for the answer
    expect((await bGot).toString()).toBe("question");
    b.app.end("answer after the question ended");
    expect((await aGot).toString()).toBe("answer after the question ended");
    await Promise.all(pipes);
    a.close();
    b.close();
  });

  test("backpressure: a reader that stops reading stops the writer on the far side", async () => {
    const a = await socketPair("a2");
    const b = await socketPair("b2");
    const pipes = [
      pipeSocketThroughRouter(a.piped, { endpoint: router.address, token: "t2", tls: trust }),
      pipeSocketThroughRouter(b.piped, { endpoint: router.address, token: "t2", tls: trust }),
    ];
    b.app.pause();
    const total = 32 << 20;
    const chunk = Buffer.alloc(64 << 10);
    let accepted = 0;
    let offset = 0;
    const writeMore = () => {
      while (offset < total) {
        const piece = Buffer.from(chunk.map((_, i) => (offset + i) % 253));
        offset += piece.length;
        const more = a.app.write(piece, () => (accepted += piece.length));
        if (!more) return void a.app.once("drain", writeMore);
      }
      a.app.end();
    };
    writeMore();
    // The reader stays paused for a second (the scenario); without backpressure all 32 MiB would go meanwhile.
    await Bun.sleep(1000);
    // Only what fits in the buffers on the way has left the writer.
    expect(accepted).toBeLessThan(total / 2);

    let received = 0;
    let intact = true;
    b.app.on("data", (c: Buffer) => {
      for (let i = 0; i < c.length; i += 4099) if (c[i] !== (received + i) % 253) intact = false;
      received += c.length;
    });
    b.app.resume();
    await new Promise((r) => b.app.once("end", r));
    expect(received).toBe(total);
    expect(intact).toBe(true);
    b.app.end();
    await Promise.all(pipes);
    a.close();
    b.close();
  }, 30_000);

  test("a side that breaks tears down the other side", async () => {
    const a = await socketPair("a3");
    const b = await socketPair("b3");
    const aPipe = pipeSocketThroughRouter(a.piped, { endpoint: router.address, token: "t3", tls: trust });
    const bPipe = pipeSocketThroughRouter(b.piped, { endpoint: router.address, token: "t3", tls: trust });
    a.app.write("hello");
    await new Promise((r) => b.app.once("data", r));

    // The program on the other side sees its connection end.
    const bEnded = new Promise((r) => {
      b.app.once("end", r);
      b.app.once("error", r);
    });
    a.piped.destroy(new Error("cable pulled"));
    await expect(aPipe).rejects.toThrow("cable pulled");

    await expect(bPipe).rejects.toThrow("the other side of the stream");

    await bEnded;
    a.close();
    b.close();
  });

  test("aborting the signal stops the pipe", async () => {
    const a = await socketPair("a4");
    const stop = new AbortController();
    const pipe = pipeSocketThroughRouter(a.piped, { endpoint: router.address, token: "t4", tls: trust, signal: stop.signal });
    stop.abort("shutting down");
    await expect(pipe).rejects.toThrow("stopped: shutting down");
    expect(a.piped.destroyed).toBe(true);
    a.close();
  });

  test("an unreachable router fails the pipe and closes the socket", async () => {
    const a = await socketPair("a5");
    const pipe = pipeSocketThroughRouter(a.piped, { endpoint: "127.0.0.1:1", token: "t5", tls: trust });
    await expect(pipe).rejects.toThrow(/ECONNREFUSED|connect|unavailable/i);
    expect(a.piped.destroyed).toBe(true);
    a.close();
  });
});

/** A TLS HTTP/2 peer in the router's place whose every stream is answered by `answer`. */
async function fakeRouter(answer: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void) {
  const { cert, key, trust } = throwawayCert();
  const server = http2.createSecureServer({ cert, key }, answer);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const endpoint = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { endpoint, trust, close: () => new Promise((r) => server.close(r)) };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the pipe to fail");
}

describe("pipeSocketThroughRouter against a router that misbehaves", () => {
  test("a stream that ends without a gRPC status fails the pipe (Internal), it does not end as if complete", async () => {
    const peer = await fakeRouter((_req, res) => {
      res.writeHead(200, { "content-type": "application/grpc" });
      writeFrame(res, FrameType.DATA, new TextEncoder().encode("partial"));
      res.end();
    });
    try {
      const a = await socketPair("a6");
      const got: Buffer[] = [];
      a.app.on("data", (c: Buffer) => got.push(c));
      a.app.on("error", () => {});
      const e = await rejection(pipeSocketThroughRouter(a.piped, { endpoint: peer.endpoint, token: "t6", tls: peer.trust }));
      expect(e).toBeInstanceOf(ConnectError);
      expect((e as ConnectError).code).toBe(Code.Internal);
      expect((e as ConnectError).rawMessage).toBe("protocol error: missing status");
      expect(a.piped.destroyed).toBe(true);
      a.close();
    } finally {
      await peer.close();
    }
  });
});

describe("pipeSocketThroughRouter timeouts", () => {
  test("a router that accepts TCP and never answers fails the pipe within the connect timeout, naming it", async () => {
    const peer = await silentListener();
    try {
      const a = await socketPair("a7");
      const t0 = performance.now();
      const e = await rejection(pipeSocketThroughRouter(a.piped, { endpoint: peer.endpoint, token: "t7", tls: { insecure: true }, connectTimeoutMs: 1000 }));
      expect(e.message).toBe(`no answer from ${peer.endpoint} within 1 s`);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(a.piped.destroyed).toBe(true);
      a.close();
    } finally {
      await peer.close();
    }
  });

  test("a router that goes silent mid-stream fails the pipe by PING within interval + timeout", async () => {
    const path = await tcpRelay(router.address);
    try {
      const a = await socketPair("a8");
      const b = await socketPair("b8");
      const keepalive = { intervalMs: 300, timeoutMs: 300 };
      const aPipe = pipeSocketThroughRouter(a.piped, { endpoint: path.endpoint, token: "t8", tls: trust, keepalive });
      const bPipe = pipeSocketThroughRouter(b.piped, { endpoint: router.address, token: "t8", tls: trust });
      b.app.on("error", () => {});
      a.app.write("hello");
      await new Promise((r) => b.app.once("data", r));
      path.blackhole();
      const t0 = performance.now();
      const e = await rejection(aPipe);
      expect((e as ConnectError).rawMessage).toBe(`the router at ${path.endpoint} did not answer a PING within 0.3 s`);
      expect(performance.now() - t0).toBeLessThan(2000);
      a.close();
      b.close();
      // The router hears of a's end only when the relay's sockets close (it drops even
      // the FIN), or after its own 20 s PING timeout: close them, then b's pipe ends.
      await path.close();
      await bPipe.catch(() => {});
    } finally {
      await path.close();
    }
  });
});
