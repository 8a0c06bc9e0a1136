/**
 * Local unary driver call: power.on() over the session's Unix socket vs. a bare
 * Connect-RPC unary call of the same shape on the same kind of socket.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { MockPower } from "../drivers/power/driver.ts";
import type { PowerClient } from "../drivers/power/client.ts";
import { sessionConnection } from "../src/client/transport.ts";
import { serveRoutes } from "../src/common/http2-server.ts";
import { ExporterService } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { serve } from "../src/testing/serve.ts";
import { callFigures, type Options, type Result } from "./lib.ts";

/**
 * The floor: ExporterService.DriverCall answered by a handler that echoes the
 * call back, with no driver runtime behind it (no lookup, dispatch, argument
 * decoding or driver code), served and called with the same HTTP/2 server and
 * client transport a session uses. What is left above it is jmp's own work.
 */
async function bareConnectEcho(): Promise<{ call(): Promise<unknown>; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-"));
  const socket = join(dir, "floor.sock");
  const served = await serveRoutes((r) => {
    r.service(ExporterService, { driverCall: (req) => ({ uuid: req.uuid, result: req.args[0] }) });
  }, { unix: socket });
  const connection = sessionConnection({ host: socket });
  const client = createClient(ExporterService, connection.transport);
  return {
    call: () => client.driverCall({ uuid: "00000000-0000-0000-0000-000000000000", method: "on", args: [] }),
    close: async () => {
      connection.close();
      await served.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function localCall({ quick }: Options): Promise<Result[]> {
  const served = await serve<PowerClient>(new MockPower({}));
  const floor = await bareConnectEcho();
  try {
    return await callFigures("local call: power.on()", () => served.client.on(), floor.call, {
      calls: quick ? 400 : 5000, rounds: quick ? 2 : 5, floorNote: "bare Connect-RPC DriverCall echo (no driver runtime) on a Unix socket",
    });
  } finally {
    await floor.close();
    await served.close();
  }
}
