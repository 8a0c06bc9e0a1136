/**
 * Byte streams on a session's raw RouterService.Stream handler, through the raw
 * client: data both ways, the passphrase checked on this path too, an open that
 * fails reported with the driver's message, and a cancelled stream that fails
 * later writes instead of hanging them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
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
import { ConnectPortal } from "../driver/portal.ts";
import { serveRoutes, type Served } from "./serve.ts";
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
