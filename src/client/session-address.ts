/**
 * Where an exporter session is and how to open a connection to it: h2c over a Unix
 * socket (local mode, and the tunnel socket of a remote shell), h2c or TLS over TCP
 * (direct mode). Free of Connect and of node:net: `j` reads it on every command.
 * The sockets themselves are opened by session-socket.ts (node:net, for Connect and
 * for TCP) and session-transport.ts (`j`'s own connection).
 */
import { insecureFromEnv } from "../common/insecure-env.ts";
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
