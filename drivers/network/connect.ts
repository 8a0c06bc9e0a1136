/**
 * Opening the exporter side of a network stream: connecting sockets with errors
 * that name the endpoint, and rendering addresses the way upstream does.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import { type ByteStream, UnavailableError } from "@jumpstarter/driver";

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

/** `host:port`, with IPv6 literals in brackets. */
export function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

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
 * A connected socket as a ByteStream: closing the writable sends FIN, cancelling
 * the readable destroys the socket. With `what`, a broken connection errors the
 * readable with an UnavailableError naming it. This stands in for the runtime's
 * socketByteStream, which throws from the socket's "end" handler when its readable
 * was cancelled first (Bun emits "end" on destroy()), crashing the process.
 */
export function socketStream(socket: net.Socket, what?: string): ByteStream {
  let settled = false;
  const settle = (finish: () => void) => {
    if (settled) return;
    settled = true;
    finish();
  };
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Buffer) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) socket.pause();
      });
      socket.on("end", () => settle(() => controller.close()));
      socket.on("close", () => settle(() => controller.close()));
      socket.on("error", (e) => {
        settle(() => controller.error(what ? new UnavailableError(`${what}: ${describeSocketError(e)}`, { cause: e }) : e));
      });
    },
    pull() {
      socket.resume();
    },
    cancel() {
      settled = true;
      socket.destroy();
    },
  }, { highWaterMark: 4 });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        if (socket.destroyed) return reject(Object.assign(new Error("socket closed"), { code: "EPIPE" }));
        socket.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (socket.destroyed || socket.writableEnded) return resolve();
        socket.end(() => resolve());
      });
    },
    abort() {
      socket.destroy();
    },
  });
  return { readable, writable };
}
