/** Local unary driver call: power.on() over the session's Unix socket vs. a bare HTTP/2 request on the same kind of socket. */
import http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MockPower } from "../drivers/power/driver.ts";
import type { PowerClient } from "../drivers/power/client.ts";
import { serve } from "../src/testing/serve.ts";
import { callFigures, type Options, type Result } from "./lib.ts";

/** An HTTP/2 server answering "ok" on a Unix socket, and one client session to it. */
async function bareHttp2(): Promise<{ request(): Promise<void>; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-"));
  const sock = join(dir, "floor.sock");
  const server = http2.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(sock, () => r()));
  const session = http2.connect("http://localhost", { createConnection: () => connect(sock) });
  const request = () => new Promise<void>((resolve, reject) => {
    const s = session.request({ ":method": "POST", ":path": "/" });
    s.on("data", () => {});
    s.on("end", () => resolve());
    s.on("error", reject);
    s.end("x");
  });
  return {
    request,
    close: () => {
      session.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function localCall({ quick }: Options): Promise<Result[]> {
  const served = await serve<PowerClient>(new MockPower({}));
  const floor = await bareHttp2();
  try {
    return await callFigures("local call: power.on()", () => served.client.on(), floor.request, {
      calls: quick ? 400 : 5000, rounds: quick ? 2 : 5, floorNote: "bare node:http2 request on a Unix socket",
    });
  } finally {
    floor.close();
    await served.close();
  }
}
