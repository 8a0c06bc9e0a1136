/**
 * Connections to an exporter session: h2c over a Unix socket (local mode and the
 * tunnel socket of a remote shell), h2c or TLS over TCP (direct mode). gRPC on the
 * wire, so upstream's Python exporters answer too.
 */
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { RawStreamOpener } from "../driver/raw-stream.ts";
import { WideWindowSessionManager } from "../common/session-manager.ts";
import { PASSPHRASE_HEADER, type SessionAddress } from "./session-address.ts";
import { sessionSocket } from "./session-socket.ts";

export { isTcpAddress, PASSPHRASE_HEADER, type SessionAddress } from "./session-address.ts";

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
  const { baseUrl, createConnection } = sessionSocket(addr);
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

