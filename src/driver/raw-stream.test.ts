/**
 * The raw byte-stream client against an exporter that misbehaves at the end of
 * a stream: an answer cut before its gRPC status must fail the read, never end
 * it as if the bytes so far were all of them (a truncated dump would look whole).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { statusTrailers, writeFrame } from "../common/grpc-raw.ts";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { openRawByteStream } from "./raw-stream.ts";

let dir: string;
let server: http2.Http2Server;
let client: http2.ClientHttp2Session;
/** How the server ends the next stream, after one DATA frame saying "partial". */
let ending: "trailers" | "no trailers" | "connection cut" = "trailers";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-raw-stream-"));
  const path = join(dir, "exporter.sock");
  server = http2.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/grpc" });
    writeFrame(res, FrameType.DATA, new TextEncoder().encode("partial"));
    if (ending === "trailers") {
      writeFrame(res, FrameType.GOAWAY);
      res.addTrailers(statusTrailers(0));
      res.end();
    } else if (ending === "no trailers") {
      res.end();
    } else {
      // What a SIGTERMed or crashing exporter leaves: the connection goes, no status.
      setTimeout(() => req.stream.session?.destroy(), 50);
    }
  });
  await new Promise<void>((r) => server.listen(path, r));
  client = http2.connect("http://localhost", { createConnection: () => net.connect(path) });
});

afterAll(async () => {
  client.destroy();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function readToEnd(): Promise<{ text: string; error?: Error }> {
  if (client.destroyed || client.closed) client = http2.connect("http://localhost", { createConnection: () => net.connect(join(dir, "exporter.sock")) });
  const s = await openRawByteStream(async (h) => ({ stream: client.request(h) }), { kind: "driver", uuid: "u", method: "dump" });
  let text = "";
  try {
    for await (const chunk of s.readable) text += new TextDecoder().decode(chunk);
  } catch (e) {
    return { text, error: e as Error };
  }
  return { text };
}

describe("openRawByteStream at the end of a stream", () => {
  test("GOAWAY and an OK status end the read cleanly", async () => {
    ending = "trailers";
    expect(await readToEnd()).toEqual({ text: "partial" });
  });

  for (const how of ["no trailers", "connection cut"] as const) {
    test(`${how}: the read fails with Internal "protocol error: missing status"`, async () => {
      ending = how;
      const { text, error } = await readToEnd();
      expect(text).toBe("partial");
      expect(error).toBeDefined();
      const cause = (error as Error & { cause?: unknown }).cause;
      expect(cause).toBeInstanceOf(ConnectError);
      expect((cause as ConnectError).code).toBe(Code.Internal);
      expect(error!.message).toBe("stream dump: protocol error: missing status");
    });
  }
});
