/**
 * One HTTP/2 server for Connect routes, shared by every role: h2c on a Unix socket
 * or TCP, or TLS on TCP, with wide flow-control windows (http2-window.ts), optional
 * keepalive PINGs and a graceful close (server-connections.ts).
 */
import { rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { widenConnectionWindow, WINDOW_SETTINGS } from "./http2-window.ts";
import { getLogger, type Logger } from "./log.ts";
import { answerMetrics, METRICS_PATH, type Registry } from "./metrics.ts";
import type { Keepalive } from "./remote-connection.ts";
import { type DrainOptions, ServerConnections } from "./server-connections.ts";

export type { DrainOptions };

/** The largest request message a server reads: 4 MiB, gRPC's default. */
export const MAX_REQUEST_BYTES = 4 * 2 ** 20;
/**
 * Streams one connection may have open at once. The busiest honest peer is the
 * controller-scale simulator (250 exporters, each a Status and a Listen stream, on
 * one connection); thousands more from one peer only cost memory (~40 KiB each).
 */
export const MAX_STREAMS_PER_CONNECTION = 1000;

export type Listen =
  | { unix: string }
  | { host: string; port: number; tls?: { cert: string | Buffer; key: string | Buffer } };

/**
 * A path answered by hand on the raw HTTP/2 request instead of through Connect:
 * the router, which passes gRPC bodies through without decoding them, and a
 * session's byte streams. Raw routes speak gRPC.
 */
export interface RawHandler {
  (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void;
  /**
   * Called once when a graceful close begins: end every call still open with
   * UNAVAILABLE and `message`, and refuse new ones the same way. Without it, the
   * handler's calls are left to finish within the grace, then cut.
   */
  shutdown?(message: string): void;
  /** False for a request Connect should answer instead (another protocol on the same path). Default: all. */
  accepts?(req: http2.Http2ServerRequest): boolean;
  /**
   * Carries byte streams (a console, a flash, a port forward), not calls: a connection
   * that has used it gets keepalive.bulkTimeoutMs to answer a PING, since a busy stream
   * can hold the answer back. Raw routes that answer calls (DriverCall, the controller's
   * lease calls and Status streams) leave it unset, so a silent peer is dropped on time.
   */
  readonly bulk?: boolean;
}

/** The readiness probe's path (see ServeOptions.ready). */
export const READY_PATH = "/readyz";

export interface ServeOptions {
  /** After the server's own (which refuses calls while draining). */
  interceptors?: Interceptor[];
  raw?: Record<string, RawHandler>;
  /** PING every connection; one that leaves a PING unanswered is destroyed. Default: no PINGs. */
  keepalive?: Keepalive;
  /** For connections dropped by the keepalive and calls cut at the end of a drain. */
  log?: Logger;
  /**
   * Serve GET /metrics from this registry, unauthenticated. On TLS the port then also
   * accepts HTTP/1.1 (chosen by ALPN), which Prometheus scrapes with; every other
   * HTTP/1.1 request gets 505.
   */
  metrics?: Registry;
  /**
   * Serve GET /readyz (a Kubernetes readiness probe, over HTTP/1.1 or HTTP/2): 200 while
   * this says true, else 503. On TLS the port then also accepts HTTP/1.1 by ALPN.
   */
  ready?: () => boolean;
}

export interface Served {
  /** The socket path, or HOST:PORT with the port actually bound. */
  address: string;
  /** The number of calls open now. */
  readonly openCalls: number;
  /**
   * Stops serving. Without `drain`, destroys every connection at once. With it, first
   * ends every open call with UNAVAILABLE and `drain.message` (Connect handlers see
   * their signal abort, raw routes get `shutdown`), refuses new calls the same way,
   * and waits up to `drain.graceMs` for them to finish. A second call returns the
   * first one's promise.
   */
  close(drain?: DrainOptions): Promise<void>;
  /** Cuts every HTTP/2 connection open now and keeps serving: its peers connect again (elsewhere, behind a Service). */
  dropConnections?(): void;
}

/**
 * @example
 * const served = await serveRoutes((r) => r.service(S, impl), { host: "0.0.0.0", port: 8082 }, { keepalive: { intervalMs: 10_000, timeoutMs: 20_000 } });
 * await served.close({ message: "the service is shutting down", graceMs: 2_000 });
 */
export async function serveRoutes(routes: (r: ConnectRouter) => void, listen: Listen, opts: ServeOptions = {}): Promise<Served> {
  const log = opts.log ?? getLogger("http2");
  const connections = new ServerConnections(opts.keepalive, log);
  const connect = connectNodeAdapter({
    routes,
    // gRPC's own default (and upstream's): a request is read whole before it is
    // decoded, so without a cap a peer could make us buffer any size. Bulk data
    // travels as byte streams, which are raw routes and framed in small pieces.
    readMaxBytes: MAX_REQUEST_BYTES,
    interceptors: [connections.interceptor, ...(opts.interceptors ?? [])],
    shutdownSignal: connections.shutdownSignal,
  });
  const raw = new Map(Object.entries(opts.raw ?? {}));
  /** HTTP/1.1 connections (scrapes), destroyed on close: HTTP/2 sessions are ServerConnections'. */
  const http1 = new Set<Socket>();
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (req.httpVersion !== "2.0") {
      const socket = req.socket;
      if (!http1.has(socket)) {
        http1.add(socket);
        socket.once("close", () => http1.delete(socket));
      }
    }
    if (opts.ready && req.url === READY_PATH && req.method === "GET") {
      const ready = opts.ready();
      res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" });
      res.end(ready ? "ready\n" : "not serving: another replica leads\n");
      return;
    }
    const scrape = opts.metrics !== undefined && req.url === METRICS_PATH;
    if (scrape) return answerMetrics(opts.metrics!, req, res);
    if (req.httpVersion !== "2.0") {
      res.writeHead(505, { "content-type": "text/plain" });
      res.end(`this port speaks gRPC over HTTP/2; over HTTP/1.1 it serves only GET ${METRICS_PATH}${opts.ready ? ` and GET ${READY_PATH}` : ""}\n`);
      return;
    }
    let route = raw.get(req.url);
    if (route?.accepts && !route.accepts(req)) route = undefined;
    connections.handle(req, res, route ?? connect, route !== undefined);
  };
  const settings = { ...WINDOW_SETTINGS, maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION };
  const server = "tls" in listen && listen.tls
    ? http2.createSecureServer({ cert: listen.tls.cert, key: listen.tls.key, allowHTTP1: opts.metrics !== undefined || opts.ready !== undefined, settings }, handler)
    : http2.createServer({ settings }, handler);
  server.on("session", (s) => {
    widenConnectionWindow(s);
    connections.addSession(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if ("unix" in listen) {
      rmSync(listen.unix, { force: true });
      server.listen(listen.unix, done);
    } else {
      server.listen(listen.port, listen.host, done);
    }
  });
  let address: string;
  if ("unix" in listen) address = listen.unix;
  else {
    const a = server.address() as AddressInfo;
    address = `${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${a.port}`;
  }
  let closing: Promise<void> | undefined;
  return {
    address,
    dropConnections: () => connections.destroy(),
    get openCalls() {
      return connections.open;
    },
    close: (drain) => (closing ??= (async () => {
      if (drain) {
        const left = await connections.drain(drain, raw.values());
        if (left > 0) log.warn(`${left} call${left === 1 ? "" : "s"} still open after ${drain.graceMs} ms: closing their connections`);
      }
      connections.destroy();
      for (const socket of http1) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("unix" in listen) rmSync(listen.unix, { force: true });
      });
    })()),
  };
}
