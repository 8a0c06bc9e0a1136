/**
 * Connecting to an exporter session and building its client tree: what `j`,
 * `jmp shell` and the TypeScript API all use.
 */
import { ConnectPortal } from "../driver/portal.ts";
import { buildClientTree } from "../driver/client-tree.ts";
import type { DriverClient } from "../driver/client.ts";
import { AllowList, type ClientRegistry, DEFAULT_ALLOW } from "../driver/registry.ts";
import { insecureFromEnv } from "../common/tls.ts";
import type { GetReportResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { type Peer, peerError } from "./errors.ts";
import { type SessionAddress, sessionConnection, isTcpAddress } from "./transport.ts";

/** The first call on a new connection: an exporter that does not answer it in this long is not going to. */
const REPORT_TIMEOUT_MS = 15_000;

/** The exporter as error messages name it, with the flags that set its TLS. */
export function sessionPeer(addr: SessionAddress): Peer {
  if (!isTcpAddress(addr.host)) return { what: "the exporter", address: `socket ${addr.host}` };
  return { what: "the exporter", address: addr.host, caHint: "--tls-ca FILE", plainHint: "--tls-grpc-insecure" };
}

export interface ConnectedSession {
  root: DriverClient;
  portal: ConnectPortal;
  report: GetReportResponse;
  /** Drops the connection (calls in flight fail). */
  close(): void;
}

/**
 * The session a `jmp shell` hands its children: JUMPSTARTER_HOST and, in direct
 * mode, how to reach it (JMP_GRPC_INSECURE or upstream's JUMPSTARTER_GRPC_INSECURE,
 * JMP_TLS_CA, JMP_GRPC_PASSPHRASE). Undefined outside a shell.
 */
export function sessionFromEnv(env: NodeJS.ProcessEnv = process.env): SessionAddress | undefined {
  if (!env.JUMPSTARTER_HOST) return undefined;
  return {
    host: env.JUMPSTARTER_HOST,
    insecure: insecureFromEnv(env),
    caFile: env.JMP_TLS_CA || undefined,
    passphrase: env.JMP_GRPC_PASSPHRASE || undefined,
  };
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
