/**
 * Connections to an exporter session: h2c over a Unix socket (local mode and the
 * tunnel socket of a remote shell), h2c or TLS over TCP (direct mode). gRPC on the
 * wire, so upstream's Python exporters answer too.
 */
import { readFileSync } from "node:fs";
import * as net from "node:net";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UserError } from "../common/errors.ts";
import type { RawStreamOpener } from "../driver/raw-stream.ts";
import { WideWindowSessionManager } from "../common/http2-window.ts";
import { netConnectTimed, tlsConnectTimed } from "../common/timed-connect.ts";

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

/** A transport to a session, and `close()` to drop its connection when done. */
export interface SessionConnection {
  transport: Transport;
  /** Byte streams on the raw HTTP/2 request (see src/driver/raw-stream.ts). */
  rawStreams: RawStreamOpener;
  close(): void;
}

export function sessionConnection(addr: SessionAddress): SessionConnection {
  const interceptors: Interceptor[] = [];
  if (addr.passphrase) {
    const passphrase = addr.passphrase;
    interceptors.push((next) => (req) => {
      req.header.set(PASSPHRASE_HEADER, passphrase);
      return next(req);
    });
  }
  let baseUrl: string;
  let createConnection: () => net.Socket;
  if (!isTcpAddress(addr.host)) {
    const path = addr.host;
    baseUrl = "http://localhost";
    createConnection = () => netConnectTimed({ path });
  } else {
    const i = addr.host.lastIndexOf(":");
    const hostname = addr.host.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(addr.host.slice(i + 1));
    if (addr.insecure) {
      baseUrl = `http://${addr.host}`;
      createConnection = () => netConnectTimed({ host: hostname, port });
    } else {
      let ca: string | undefined;
      const caFile = addr.caFile ?? process.env.SSL_CERT_FILE;
      if (caFile) {
        try {
          ca = readFileSync(caFile, "utf8");
        } catch (e) {
          throw new UserError(`cannot read the CA file ${caFile}: ${(e as Error).message}`, 2);
        }
      }
      baseUrl = `https://${addr.host}`;
      createConnection = () =>
        tlsConnectTimed({ host: hostname, port, ca, ALPNProtocols: ["h2"], servername: net.isIP(hostname) ? undefined : hostname });
    }
  }
  // Wide windows: in distributed mode this connection is tunnelled through the router.
  const sessionManager = new WideWindowSessionManager(baseUrl, undefined, { createConnection });
  const transport = createGrpcTransport({
    baseUrl,
    interceptors,
    // Byte streams and calls are small or already compressed; gzip only costs CPU here.
    acceptCompression: [],
    sessionManager,
  });
  const rawStreams: RawStreamOpener = async (headers) => {
    const stream = await sessionManager.request("POST", String(headers[":path"]), {
      ...headers,
      ...(addr.passphrase ? { [PASSPHRASE_HEADER]: addr.passphrase } : {}),
    }, {});
    return { stream, read: () => sessionManager.notifyResponseByteRead(stream) };
  };
  return { transport, rawStreams, close: () => sessionManager.abort() };
}

