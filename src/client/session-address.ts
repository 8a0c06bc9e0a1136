/**
 * Where an exporter session is and how to open a connection to it: h2c over a Unix
 * socket (local mode, and the tunnel socket of a remote shell), h2c or TLS over TCP
 * (direct mode). Free of Connect: both transport.ts (Connect, for the library and
 * `jmp shell`) and exporter-calls.ts (`j`) open their connections with it.
 */
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { UserError } from "../common/errors.ts";
import { insecureFromEnv } from "../common/tls.ts";
import { netConnectTimed, tlsConnectTimed } from "../common/timed-connect.ts";
import type { Peer } from "./errors.ts";

export const PASSPHRASE_HEADER = "x-jumpstarter-passphrase";

export interface SessionAddress {
  /** A Unix socket path, or HOST:PORT. */
  host: string;
  /** TCP only: plain h2c instead of TLS. */
  insecure?: boolean;
  /** TCP only: a CA bundle (PEM) to verify the exporter's certificate. */
  caFile?: string;
  passphrase?: string;
}

/** `host:port` with a port from 1 to 65535, as upstream tells TCP from a socket path. */
export function isTcpAddress(host: string): boolean {
  const i = host.lastIndexOf(":");
  if (i <= 0) return false;
  const port = Number(host.slice(i + 1));
  return Number.isInteger(port) && port >= 1 && port <= 65535 && !host.includes("/");
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

/** The exporter as error messages name it, with the flags that set its TLS. */
export function sessionPeer(addr: SessionAddress): Peer {
  if (!isTcpAddress(addr.host)) return { what: "the exporter", address: `socket ${addr.host}` };
  return { what: "the exporter", address: addr.host, caHint: "--tls-ca FILE", plainHint: "--tls-grpc-insecure" };
}

/** The URL an HTTP/2 client is given for `addr`, and the socket it connects with. */
export function sessionSocket(addr: SessionAddress): { baseUrl: string; createConnection: () => net.Socket } {
  if (!isTcpAddress(addr.host)) {
    const path = addr.host;
    return { baseUrl: "http://localhost", createConnection: () => netConnectTimed({ path }) };
  }
  const i = addr.host.lastIndexOf(":");
  const hostname = addr.host.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.host.slice(i + 1));
  if (addr.insecure) return { baseUrl: `http://${addr.host}`, createConnection: () => netConnectTimed({ host: hostname, port }) };
  let ca: string | undefined;
  const caFile = addr.caFile ?? process.env.SSL_CERT_FILE;
  if (caFile) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (e) {
      throw new UserError(`cannot read the CA file ${caFile}: ${(e as Error).message}`, 2);
    }
  }
  return {
    baseUrl: `https://${addr.host}`,
    createConnection: () => tlsConnectTimed({ host: hostname, port, ca, ALPNProtocols: ["h2"], servername: net.isIP(hostname) ? undefined : hostname }),
  };
}
