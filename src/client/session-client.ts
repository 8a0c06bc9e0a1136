/**
 * Connecting to an exporter session and building its client tree: what `j`,
 * `jmp shell` and the TypeScript API all use.
 */
import { ConnectPortal } from "../driver/portal.ts";
import { buildClientTree } from "../driver/client-tree.ts";
import type { DriverClient } from "../driver/client.ts";
import { AllowList, type ClientRegistry, DEFAULT_ALLOW } from "../driver/registry.ts";
import { DriverError } from "../driver/errors.ts";
import { UserError } from "../common/errors.ts";
import { type SessionAddress, sessionConnection, isTcpAddress } from "./transport.ts";
import type { GetReportResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";

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
    report = await portal.getReport();
  } catch (e) {
    const where = isTcpAddress(addr.host) ? addr.host : `socket ${addr.host}`;
    const reason = e instanceof DriverError ? e.message.replace(/^GetReport: /, "") : (e as Error).message;
    connection.close();
    throw new UserError(`cannot reach the exporter at ${where}: ${reason}`, 1);
  }
  return { root: buildClientTree(report.reports, portal, { registry, allow }), portal, report, close: connection.close };
}
