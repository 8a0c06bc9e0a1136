/**
 * Connecting to an exporter session and building its client tree: what `j`,
 * `jmp shell` and the TypeScript API all use.
 */
import { ConnectPortal } from "../driver/portal.ts";
import { buildClientTree } from "../driver/client-tree.ts";
import type { DriverClient } from "../driver/client.ts";
import { AllowList, type ClientRegistry, DEFAULT_ALLOW } from "../driver/registry.ts";
import type { GetReportResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { peerError } from "./errors.ts";
import { type SessionAddress, sessionFromEnv, sessionPeer } from "./session-address.ts";
import { sessionConnection } from "./transport.ts";

export { sessionFromEnv, sessionPeer };

/** The first call on a new connection: an exporter that does not answer it in this long is not going to. */
const REPORT_TIMEOUT_MS = 15_000;

export interface ConnectedSession {
  root: DriverClient;
  portal: ConnectPortal;
  report: GetReportResponse;
  /** Drops the connection (calls in flight fail). */
  close(): void;
}

export async function connectSession(
  addr: SessionAddress,
  registry: ClientRegistry,
  allow: AllowList = AllowList.fromEnv(process.env.JMP_DRIVERS_ALLOW, DEFAULT_ALLOW),
): Promise<ConnectedSession> {
  const connection = sessionConnection(addr);
  const portal = new ConnectPortal(connection);
  let report: GetReportResponse;
  try {
    report = await portal.exporter.getReport({}, { timeoutMs: REPORT_TIMEOUT_MS });
  } catch (e) {
    connection.close();
    throw peerError(e, sessionPeer(addr));
  }
  return { root: buildClientTree(report.reports, portal, { registry, allow }), portal, report, close: connection.close };
}
