/**
 * gRPC over TLS to a controller or a router, as one connection that gives up
 * when it should: the exporter's agent and the client's controller connection
 * both use it, so a silent peer, a lost connection and a call left unanswered
 * fail the same way on either side.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { Logger } from "./log.ts";
import { SessionManager } from "./session-manager.ts";
import { CONNECT_TIMEOUT_MS, tlsConnectTimed } from "./timed-connect.ts";
import { tlsConnectOptions, type TlsSettings } from "./tls.ts";

/** HTTP/2 PING while calls are open: a peer that stops answering is given up within `intervalMs + timeoutMs`. */
export interface Keepalive {
  intervalMs: number;
  timeoutMs: number;
  /**
   * Servers only: the time to answer on a connection that has carried a byte stream
   * (a raw route: an image through the router, a flash). Its peer answers a PING only
   * after the data already in its send buffer (megabytes, on a slow uplink), and a
   * busy peer is not a gone one. Default: `timeoutMs`.
   */
  bulkTimeoutMs?: number;
}

/**
 * A dead controller or router is noticed within 10 s. Upstream's router and
 * controller (grpc-go) accept a PING every 3 s, so 5 s never earns a GOAWAY for
 * pinging too often (and connect-node backs off if one does).
 */
export const KEEPALIVE: Keepalive = { intervalMs: 5_000, timeoutMs: 5_000 };

export interface RemoteOptions {
  interceptors?: Interceptor[];
  /** Who is at the endpoint, for log lines: "the controller". */
  peer?: string;
  /** Told, naming the endpoint, when an established connection is lost. */
  log?: Logger;
  keepalive?: Keepalive;
  /** For TCP and the TLS handshake together. */
  connectTimeoutMs?: number;
  /** A deadline for every call that sets none (for unary calls that must not wait forever). */
  defaultTimeoutMs?: number;
}

export interface RemoteConnection {
  transport: Transport;
  /** Closes the HTTP/2 connection and every call still on it. */
  close(): void;
}

/**
 * gRPC over TLS (HTTP/2, ALPN h2) to a controller or router: a peer that does
 * not finish connecting within the connect timeout, or stops answering PINGs,
 * fails the open calls instead of hanging them. No compression: tunnelled
 * bytes are often compressed already, and gzip on every frame costs a small
 * exporter more than it saves.
 */
export function connectRemote(endpoint: string, trust: TlsSettings, opts: RemoteOptions = {}): RemoteConnection {
  const options = tlsConnectOptions(endpoint, trust);
  const baseUrl = `https://${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  const keepalive = opts.keepalive ?? KEEPALIVE;
  const manager = new WatchedSessionManager(
    baseUrl,
    { pingIntervalMs: keepalive.intervalMs, pingTimeoutMs: keepalive.timeoutMs },
    { createConnection: () => tlsConnectTimed(options, opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS) },
    `${opts.peer ?? "the peer"} at ${endpoint}`,
    opts.log,
  );
  return {
    transport: createGrpcTransport({
      baseUrl, sessionManager: manager, acceptCompression: [], interceptors: opts.interceptors ?? [], defaultTimeoutMs: opts.defaultTimeoutMs,
    }),
    close: () => manager.abort(),
  };
}

/**
 * Connect's session manager, with two things it does not see under Bun: a call
 * whose connection goes away before the answer's headers closes with no error
 * (code NO_ERROR), which connect-node would wait on forever, so it fails here
 * as Unavailable; and a lost connection is logged once, naming the peer.
 */
class WatchedSessionManager extends SessionManager {
  private readonly watched = new WeakSet<http2.Http2Session>();

  constructor(
    url: string,
    ping: ConstructorParameters<typeof Http2SessionManager>[1],
    options: http2.SecureClientSessionOptions,
    private readonly who: string,
    private readonly log?: Logger,
  ) {
    super(url, ping, options);
  }

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    let answered = false;
    stream.once("response", () => (answered = true));
    stream.once("close", () => {
      if (answered || stream.rstCode || stream.listenerCount("error") === 0) return;
      stream.emit("error", new ConnectError(`the connection to ${this.who} closed before the call was answered`, Code.Unavailable));
    });
    const session = stream.session;
    if (session && this.log && !this.watched.has(session)) {
      this.watched.add(session);
      session.once("error", (e: Error) => {
        // Canceled is our own close().
        if (e instanceof ConnectError && e.code === Code.Canceled) return;
        this.log?.warn(`lost the connection to ${this.who}: ${e instanceof ConnectError ? e.rawMessage : e.message}`);
      });
    }
    return stream;
  }
}
