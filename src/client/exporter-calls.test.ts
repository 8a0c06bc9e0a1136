/**
 * `j`'s own connection (exporter-calls.ts) against a real exporter session, on a
 * Unix socket and over TCP with a passphrase: calls, streaming calls (cancelled when
 * the loop is left), byte streams, typed errors for statuses, and connection
 * failures worded exactly as the Connect path (session-client.ts) words them.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { connect, createServer, type Socket } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetReportResponseSchema } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_DRIVERS, registerBuiltinClients } from "../../drivers/catalog.ts";
import { eventually } from "../common/eventually.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { buildDriverTree } from "../driver/build.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import type { DriverClient } from "../driver/client.ts";
import { Driver } from "../driver/driver.ts";
import { callSignal, exported, InvalidArgumentError, MethodNotFoundError } from "../driver/index.ts";
import { ClientRegistry } from "../driver/registry.ts";
import { serveRoutes } from "../exporter/serve.ts";
import { ExporterSession } from "../exporter/session.ts";
import { connectForJ } from "./exporter-calls.ts";
import { connectSession } from "./session-client.ts";

class Probe extends Driver {
  static override readonly client = "jumpstarter_driver_composite.client.CompositeClient";
  static ended = 0;
  @exported async add(a: number, b: { by: number[] }) {
    return { sum: a + b.by.reduce((x, y) => x + y, 0), note: null };
  }
  @exported async refuse(why: string) {
    throw new InvalidArgumentError(`no: ${why}`);
  }
  @exported async *count() {
    try {
      for (let i = 0; ; i++) {
        yield i;
        await new Promise((r) => setTimeout(r, 5));
        if (callSignal().aborted) return;
      }
    } finally {
      Probe.ended++;
    }
  }
}

const catalog = new DriverCatalog([...BUILTIN_DRIVERS, { name: "Probe", types: ["Probe"], driver: Probe, source: "test" }]);
const config = parseExporterConfig({
  metadata: { namespace: "default", name: "pi-1" },
  export: { echo: { type: "EchoNetwork" }, probe: { type: "Probe" } },
}, "exporter-calls-test.yaml");
const registry = registerBuiltinClients(new ClientRegistry());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function served(listen: { unix: string } | { host: string; port: number }, passphrase?: string): Promise<string> {
  const session = new ExporterSession({ root: buildDriverTree(config, catalog) });
  cleanups.push(() => session.close());
  const s = await serveRoutes(session, listen, { passphrase });
  cleanups.push(() => s.close());
  return s.address;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "jmp-exporter-calls-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function child(root: DriverClient, name: string): DriverClient {
  return root.children[name]!;
}

test("on a Unix socket: a call with arguments, a streaming call cancelled by leaving its loop, a byte stream", async () => {
  const socket = join(tempDir(), "session.sock");
  await served({ unix: socket });
  const { root, close } = await connectForJ({ host: socket }, registry);
  cleanups.push(close);
  const probe = child(root, "probe");
  expect(await probe.call("add", 2, { by: [3, 4.5] })).toEqual({ sum: 9.5, note: null });

  const seen: unknown[] = [];
  const endedBefore = Probe.ended;
  for await (const n of probe.streamingCall("count")) {
    seen.push(n);
    if (seen.length === 3) break;
  }
  expect(seen).toEqual([0, 1, 2]);
  // Leaving the loop cancelled the call on the exporter.
  await eventually(() => expect(Probe.ended).toBe(endedBefore + 1));

  const stream = await child(root, "echo").stream("connect");
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode("hello over h2"));
  await writer.close();
  let echoed = "";
  for await (const chunk of stream.readable) echoed += new TextDecoder().decode(chunk);
  expect(echoed).toBe("hello over h2");
});

test("a status comes back as the typed error, marked as the exporter's, named by the method", async () => {
  const socket = join(tempDir(), "session.sock");
  await served({ unix: socket });
  const { root, close } = await connectForJ({ host: socket }, registry);
  cleanups.push(close);
  const refused = (await child(root, "probe").call("refuse", "too high").catch((e) => e)) as Error & { fromExporter?: boolean };
  expect(refused).toBeInstanceOf(InvalidArgumentError);
  expect(refused.message).toBe("refuse: no: too high");
  expect(refused.fromExporter).toBe(true);
  const missing = await child(root, "probe").call("nope").catch((e) => e);
  expect(missing).toBeInstanceOf(MethodNotFoundError);
  // A value JSON cannot carry fails here, before any request, as the Connect path's does.
  const unsendable = await (async () => child(root, "probe").call("add", Number.NaN, { by: [] }))().catch((e: Error) => e);
  expect(unsendable).toBeInstanceOf(TypeError);
  expect((unsendable as Error).message).toBe("argument 1: NaN cannot travel as JSON");
});

test("over TCP with a passphrase: the right one is let in, a wrong one gets the exporter's refusal as the Connect path words it", async () => {
  const address = await served({ host: "127.0.0.1", port: 0 }, "s3cret");
  const { root, close } = await connectForJ({ host: address, insecure: true, passphrase: "s3cret" }, registry);
  cleanups.push(close);
  expect(await child(root, "probe").call("add", 1, { by: [1] })).toEqual({ sum: 2, note: null });
  const ours = await connectForJ({ host: address, insecure: true, passphrase: "wrong" }, registry).catch((e) => e);
  const connects = await connectSession({ host: address, insecure: true, passphrase: "wrong" }, registry).catch((e) => e);
  expect(ours.name).toBe("PeerError");
  expect(ours.message).toBe(connects.message);
});

test("a socket that is gone, and a port that refuses: the same words as the Connect path", async () => {
  const socket = join(tempDir(), "gone.sock");
  const ours = await connectForJ({ host: socket }, registry).catch((e) => e);
  const connects = await connectSession({ host: socket }, registry).catch((e) => e);
  expect(ours.message).toBe(`cannot reach the exporter at socket ${socket}: no such socket (is the session still running?)`);
  expect(ours.message).toBe(connects.message);

  // A port nothing listens on: bind one, note it, close it.
  const address = await served({ host: "127.0.0.1", port: 0 });
  await cleanups.splice(0).reverse().reduce((p, c) => p.then(() => c()), Promise.resolve());
  const refused = (await connectForJ({ host: address, insecure: true }, registry).catch((e) => e)) as Error;
  const refusedConnect = await connectSession({ host: address, insecure: true }, registry).catch((e) => e);
  expect(refused.message).toStartWith(`cannot reach the exporter at ${address}: connection refused`);
  expect(refused.message).toBe(refusedConnect.message);
});

test("a connection cut mid-call (an exporter killed, a tunnel dropped) ends the streaming call with an UnavailableError, not a hang", async () => {
  // A relay between j and the session, to cut the connection as a dying process would.
  const { root, relay } = await behindRelay();
  const counting = child(root, "probe").streamingCall("count")[Symbol.asyncIterator]();
  expect((await counting.next()).value).toBe(0);
  relay.cut();
  const ended = await (async () => {
    for (;;) await counting.next();
  })().catch((e: Error) => e);
  expect(ended.name).toBe("UnavailableError");
  expect(ended.message).toBe("count: the connection to the exporter closed before the call ended");
  // And the next call says the connection is gone, at once.
  const next = await child(root, "probe").call("add", 1, { by: [] }).catch((e: Error) => e);
  expect((next as Error).name).toBe("UnavailableError");
  expect((next as Error).message).toBe("add: the connection to the exporter closed before the call ended");
});

test("a peer that answers with malformed protobuf, or not gRPC at all, gets a clear error, not a wrong value", async () => {
  const socket = join(tempDir(), "odd.sock");
  const report = toBinary(GetReportResponseSchema, create(GetReportResponseSchema, {
    reports: [{ uuid: "r", labels: { "jumpstarter.dev/client": "jumpstarter_driver_power.client.PowerClient" }, methodsDescription: {} }],
  }));
  const grpc = (res: http2.Http2ServerResponse, message: Uint8Array) => {
    const frame = Buffer.alloc(5 + message.byteLength);
    frame.writeUInt32BE(message.byteLength, 1);
    frame.set(message, 5);
    res.writeHead(200, { "content-type": "application/grpc" });
    res.addTrailers({ "grpc-status": "0" });
    res.end(frame);
  };
  let getReport: (res: http2.Http2ServerResponse) => void = (res) => grpc(res, report);
  const server = http2.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url.endsWith("/GetReport")) getReport(res);
      // A DriverCallResponse whose result field says 50 bytes and holds 2.
      else grpc(res, Uint8Array.of(0x12, 50, 0x08, 0x00));
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));

  const { root, close } = await connectForJ({ host: socket }, registry);
  cleanups.push(close);
  const bad = (await root.call("on").catch((e) => e)) as Error;
  expect(bad.name).toBe("DriverError");
  expect(bad.message).toBe("on: a malformed response: a field runs past the end of its message");

  getReport = (res) => {
    res.writeHead(404, { "content-type": "text/html" });
    res.end("<h1>not here</h1>");
  };
  const notGrpc = (await connectForJ({ host: socket }, registry).catch((e) => e)) as Error;
  expect(notGrpc.name).toBe("PeerError");
  expect(notGrpc.message).toBe(`the exporter at socket ${socket} answered: HTTP 404 (Unimplemented)`);
});

/** A session, `j`'s connection to it through a relay (countingRelay), and that relay. */
async function behindRelay() {
  const dir = tempDir();
  const socket = join(dir, "session.sock");
  await served({ unix: socket });
  const relay = await countingRelay(dir, socket);
  const { root, close } = await connectForJ({ host: relay.front }, registry);
  cleanups.push(close);
  return { root, relay, socket };
}

/** A relay in front of the session socket that counts connections and can cut them all. */
async function countingRelay(dir: string, socket: string): Promise<{ front: string; connections: () => number; cut: () => void }> {
  const relayed = new Set<Socket>();
  let connections = 0;
  const relay = createServer((client) => {
    connections++;
    const upstream = connect(socket);
    relayed.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  const front = join(dir, "front.sock");
  await new Promise<void>((r) => relay.listen(front, r));
  cleanups.push(() => new Promise<void>((r) => relay.close(() => r())));
  return { front, connections: () => connections, cut: () => relayed.forEach((s) => s.destroy()) };
}

test("byte streams ride the calls' own connection: megabytes echoed whole to a slow reader, a refusal in the Connect path's words, a cut read as one", async () => {
  const { root, relay, socket } = await behindRelay();
  const echo = child(root, "echo");

  // 8 MiB out in 64 KiB chunks, read back slowly: flow control holds the exporter, nothing is lost or reordered.
  const total = 8 * 1024 * 1024;
  const stream = await echo.stream("connect");
  const writing = (async () => {
    const writer = stream.writable.getWriter();
    const chunk = new Uint8Array(64 * 1024);
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      // The same buffer each time, changed once written: the stream must have copied it out.
      chunk.fill((sent / chunk.byteLength) & 0xff);
      await writer.write(chunk);
    }
    await writer.close();
  })();
  let got = 0;
  let wrong = 0;
  for await (const part of stream.readable) {
    for (let i = 0; i < part.byteLength; i += 4096) if (part[i] !== (Math.floor((got + i) / (64 * 1024)) & 0xff)) wrong++;
    got += part.byteLength;
    if (got % (1024 * 1024) < part.byteLength) await Bun.sleep(20);
  }
  await writing;
  expect(got).toBe(total);
  expect(wrong).toBe(0);
  expect(await child(root, "probe").call("add", 1, { by: [2] })).toEqual({ sum: 3, note: null });
  // GetReport, the stream and the call: one connection, as upstream's clients make (each is its own Dial through a tunnel).
  expect(relay.connections()).toBe(1);

  // A stream the exporter refuses: the same words as the library's (Connect) path.
  const ours = (await echo.stream("nope").catch((e) => e)) as Error;
  const library = await connectSession({ host: socket }, registry);
  cleanups.push(() => library.close());
  const theirs = (await library.root.children.echo!.stream("nope").catch((e) => e)) as Error;
  expect(ours.name).toBe(theirs.name);
  expect(ours.message).toBe(theirs.message);

  // The connection cut under an open stream: its reader fails, saying so.
  const open = await echo.stream("connect");
  const reading = (async () => {
    for await (const _ of open.readable);
  })().catch((e: Error) => e);
  await Bun.sleep(20);
  relay.cut();
  const cut = (await reading) as Error;
  expect(cut.message).toBe("stream connect: the connection to the exporter closed before the stream ended");
});
