/**
 * Outbound connections that give up: a peer that accepts TCP and then says
 * nothing (a wrong port, a hung process, a firewall that swallows packets) must
 * fail in seconds with its address named, not hang a command forever.
 */
import * as net from "node:net";
import * as tls from "node:tls";

/** How long a TCP connect plus TLS handshake may take before we call the peer silent. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** The peer did not finish connecting in time; `code` is what error translation looks for. */
export class ConnectTimeoutError extends Error {
  override name = "ConnectTimeoutError";
  readonly code = "ETIMEDOUT";
  constructor(readonly address: string, readonly timeoutMs: number) {
    super(`no answer from ${address} within ${Math.round(timeoutMs / 1000)} s`);
  }
}

function withDeadline<S extends net.Socket>(socket: S, ready: string, address: string, timeoutMs: number): S {
  const timer = setTimeout(() => socket.destroy(new ConnectTimeoutError(address, timeoutMs)), timeoutMs);
  timer.unref?.();
  const clear = () => clearTimeout(timer);
  socket.once(ready, clear);
  socket.once("close", clear);
  return socket;
}

/** `tls.connect` that fails with ConnectTimeoutError when the handshake has not finished in time. */
export function tlsConnectTimed(options: tls.ConnectionOptions & { host: string; port: number }, timeoutMs = CONNECT_TIMEOUT_MS): tls.TLSSocket {
  return withDeadline(tls.connect(options), "secureConnect", `${options.host}:${options.port}`, timeoutMs);
}

/** `net.connect` to a TCP port or a Unix socket, failing with ConnectTimeoutError when it takes too long. */
export function netConnectTimed(to: { host: string; port: number } | { path: string }, timeoutMs = CONNECT_TIMEOUT_MS): net.Socket {
  const address = "path" in to ? to.path : `${to.host}:${to.port}`;
  return withDeadline(net.connect(to as net.NetConnectOpts), "connect", address, timeoutMs);
}
