/**
 * Opening the exporter side of a network stream: connecting sockets with errors
 * that name the endpoint, and rendering addresses the way upstream does.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import { type ByteStream, socketByteStream, UnavailableError } from "@jumpstarter/driver";

const ERRNO_WORDS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "timed out",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed (temporary DNS failure)",
  ENOENT: "no such socket file",
  EACCES: "permission denied",
  ENOTSOCK: "not a socket",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available on this machine",
};

/** "connection refused (ECONNREFUSED)" rather than Node's "connect ECONNREFUSED 1.2.3.4:5". */
export function describeSocketError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code && ERRNO_WORDS[code]) return `${ERRNO_WORDS[code]} (${code})`;
  return e instanceof Error ? e.message : String(e);
}

export { hostPort } from "./host-port.ts";

/** The first address a host name resolves to; the name itself when it does not resolve (as upstream). */
export async function resolveHost(host: string): Promise<string> {
  if (net.isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch {
    return host;
  }
}

/**
 * Connects a stream socket and resolves once it is connected, so that a refused or
 * unreachable endpoint fails the client's `connect` call instead of handing it a
 * stream that is dead on arrival. Half-open is allowed: the peer's FIN ends only
 * our readable side, as a spliced TCP connection should.
 */
export function connectSocket(
  options: { host: string; port: number } | { path: string },
  what: string,
  timeoutMs?: number,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ ...options, allowHalfOpen: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fail = (e: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new UnavailableError(`cannot connect to ${what}: ${describeSocketError(e)}`, { cause: e }));
    };
    socket.once("error", fail);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    }
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve(socket);
    });
  });
}

/**
 * A connected socket as a ByteStream; with `what`, a broken connection errors the
 * readable with an UnavailableError naming it.
 */
export function socketStream(socket: net.Socket, what?: string): ByteStream {
  return socketByteStream(socket, {
    mapError: (e) => (what ? new UnavailableError(`${what}: ${describeSocketError(e)}`, { cause: e }) : e),
  });
}
