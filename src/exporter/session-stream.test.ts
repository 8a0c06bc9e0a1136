/**
 * Byte streams on a session's raw RouterService.Stream handler, through the raw
 * client: data both ways, the passphrase checked on this path too, an open that
 * fails reported with the driver's message, and a cancelled stream that fails
 * later writes instead of hanging them; a socket's writable gets messages whole.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import { sessionConnection } from "../client/transport.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { encodeFrame, FrameDecoder, ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { buildDriverTree } from "../driver/build.ts";
import { readAll } from "../driver/byte-stream.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import { DriverError } from "../driver/errors.ts";
import { toConnectError } from "../driver/connect-errors.ts";
import { openRawByteStream } from "../driver/raw-stream.ts";
import { ConnectPortal } from "../driver/portal.ts";
import { serveRoutes, type Served } from "./serve.ts";
import { serveByteStream } from "./session-stream.ts";
import { ExporterSession } from "./session.ts";

let dir: string;
let session: ExporterSession;
let served: Served;
let socket: string;
let echoUuid: string;
const rejected: string[] = [];

const portal = (passphrase?: string) => new ConnectPortal(sessionConnection({ host: socket, passphrase }));

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-session-stream-"));
  socket = join(dir, "session.sock");
  const config = parseExporterConfig({ export: { echo: { type: "EchoNetwork" } } }, "t.yaml");
  session = new ExporterSession({ root: buildDriverTree(config, new DriverCatalog(BUILTIN_DRIVERS)) });
  served = await serveRoutes(session, { unix: socket }, { passphrase: "pw", onRejected: (m) => rejected.push(m) });
  const report = await portal("pw").getReport();
  echoUuid = report.reports.find((r) => r.labels["jumpstarter.dev/name"] === "echo")!.uuid;
});

afterAll(async () => {
  await served?.close();
  await session?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("bytes go both ways, larger than one frame, and the stream ends after the client's end", async () => {
  const stream = await portal("pw").openStream({ kind: "driver", uuid: echoUuid, method: "connect" });
  const payload = new Uint8Array(600_000).map((_, i) => i % 251);
  const writer = stream.writable.getWriter();
  const echoed = readAll(stream.readable);
  await writer.write(payload.subarray(0, 300_000));
  await writer.write(payload.subarray(300_000));
  await writer.close();
  expect(Buffer.from(await echoed).equals(Buffer.from(payload))).toBe(true);
});

test("the passphrase is checked on a raw stream as on every other call", async () => {
  for (const wrong of [undefined, "guess"]) {
    const e = await failure(portal(wrong).openStream({ kind: "driver", uuid: echoUuid, method: "connect" }));
    expect(e).toBeInstanceOf(DriverError);
    expect(e.message).toBe("stream connect: invalid or missing passphrase");
  }
  expect(rejected).toEqual(["Stream", "Stream"]);
});

test("a stream that cannot be opened fails with the exporter's message, not a hang", async () => {
  const e = await failure(portal("pw").openStream({ kind: "driver", uuid: echoUuid, method: "explode" }));
  expect(e.message).toStartWith("stream explode: method explode not found on driver");
  const bad = await failure(portal("pw").openStream({ kind: "nonsense" }));
  expect(bad.message).toContain("unsupported stream request");
});

test("cancelling the readable ends the call: a later write fails instead of hanging", async () => {
  const stream = await portal("pw").openStream({ kind: "driver", uuid: echoUuid, method: "connect" });
  const writer = stream.writable.getWriter();
  await writer.write(new TextEncoder().encode("x"));
  const reader = stream.readable.getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toBe("x");
  await reader.cancel();
  // The writable side is gone with the call: a later write fails instead of hanging.
  const e = await failure(writer.write(new TextEncoder().encode("y")));
  expect(e.message).toMatch(/closed|cancel|reset/i);
});

test("a client that half-closes without a GOAWAY frame (the request just ends) still gets every byte back and the stream's end", async () => {
  const { rawStreams, close } = sessionConnection({ host: socket, passphrase: "pw" });
  try {
    const { stream } = await rawStreams({
      ":method": "POST",
      ":path": ROUTER_STREAM_PATH,
      "content-type": "application/grpc",
      te: "trailers",
      request: JSON.stringify({ kind: "driver", uuid: echoUuid, method: "connect" }),
    });
    const payload = new Uint8Array(300_000).map((_, i) => i % 249);
    const decoder = new FrameDecoder();
    const received: Uint8Array[] = [];
    const ended = new Promise<void>((resolve) => stream.once("end", () => resolve()));
    stream.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) if (f.frameType === FrameType.DATA) received.push(f.payload);
    });
    for (const part of encodeFrame(FrameType.DATA, payload)) stream.write(part);
    stream.end();
    await ended;
    expect(Buffer.concat(received).equals(Buffer.from(payload))).toBe(true);
  } finally {
    close();
  }
});

/**
 * serveByteStream alone, on a plain h2c server, with a driver side that records
 * the writes it gets: 300 000 bytes sent as one message arrive in ~19 HTTP/2 DATA
 * frames, and a socket's writable (`gatherWrites`) must get them as one write.
 */
async function writesSeenByDriver(gatherWrites: boolean, messages: Uint8Array[]): Promise<Uint8Array[]> {
  const writes: Uint8Array[] = [];
  let ended!: () => void;
  const driverDone = new Promise<void>((resolve) => (ended = resolve));
  const server = http2.createServer((req, res) =>
    serveByteStream(req, res, {
      open: async () => ({
        readable: new ReadableStream<Uint8Array>({ start: (c) => void driverDone.then(() => c.close()) }),
        writable: new WritableStream<Uint8Array>({ write: (chunk) => void writes.push(chunk.slice()), close: () => ended() }),
        gatherWrites,
      }),
      failed: (e) => toConnectError(e),
    }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = await openRawByteStream(async (headers) => ({ stream: client.request(headers) }), { kind: "driver", uuid: "u", method: "connect" });
    const writer = stream.writable.getWriter();
    for (const m of messages) await writer.write(m);
    await writer.close();
    await readAll(stream.readable);
    return writes;
  } finally {
    client.close();
    server.close();
  }
}

test("a socket's writable gets each message whole; any other writable gets it in the pieces it arrived in", async () => {
  const first = new Uint8Array(300_000).map((_, i) => i % 241);
  const second = new Uint8Array(70_000).fill(7);
  const whole = await writesSeenByDriver(true, [first, second]);
  expect(whole.map((w) => w.byteLength)).toEqual([300_000, 70_000]);
  expect(Buffer.concat(whole).equals(Buffer.concat([first, second]))).toBe(true);
  const pieces = await writesSeenByDriver(false, [first, second]);
  expect(pieces.length).toBeGreaterThan(2);
  expect(Buffer.concat(pieces).equals(Buffer.concat([first, second]))).toBe(true);
});
