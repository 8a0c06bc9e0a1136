/**
 * Reading a lease's captured console output from the controller (ConsoleLogService.Read):
 * what is kept, then with `follow` what arrives until the lease has ended and its
 * exporter has sent the rest.
 */
import { createClient } from "@connectrpc/connect";
import { ConsoleLogService } from "../gen/jumpstarter/console/v1/console_pb.ts";
import { type ControllerAddress, controllerPeer, controllerTransport } from "./controller.ts";
import { peerError } from "./errors.ts";

export interface ConsoleChunk {
  driver: string;
  data: Uint8Array;
  /** Earlier bytes of this driver that are no longer kept (on its first chunk). */
  skipped: number;
}

export async function* readConsoleLogs(
  addr: ControllerAddress,
  opts: { lease: string; driver?: string; follow?: boolean; signal?: AbortSignal },
): AsyncGenerator<ConsoleChunk> {
  const remote = controllerTransport(addr);
  const client = createClient(ConsoleLogService, remote.transport);
  try {
    // No deadline: following a lease lasts as long as the lease.
    const stream = client.read({ lease: opts.lease, driver: opts.driver ?? "", follow: opts.follow ?? false }, { timeoutMs: 0, signal: opts.signal });
    for await (const m of stream) yield { driver: m.driver, data: m.data, skipped: Number(m.skipped) };
  } catch (e) {
    throw peerError(e, controllerPeer(addr.endpoint));
  } finally {
    remote.close();
  }
}
