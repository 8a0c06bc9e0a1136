/**
 * A router on its own (`jmp router run`): RouterService over HTTP/2 with TLS on one
 * TCP port, and GET /metrics on the same port. The controller embeds the same
 * routes on its own port instead.
 */
import { type DrainOptions, type Served, serveRoutes } from "../common/http2-server.ts";
import { getLogger } from "../common/log.ts";
import type { Keepalive } from "../common/remote-connection.ts";
import { newRegistry, registerRouterMetrics } from "../common/metrics.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { type RouterOptions, routerHandler } from "./router.ts";

/**
 * A vanished client or exporter is dropped within 30 s, which ends its peer's
 * stream too. The 20 s to answer is generous on purpose: a peer uploading an image
 * through the router sends its PING answer behind the data already in its socket's
 * send buffer (megabytes, on a slow uplink), and a busy peer is not a gone one.
 */
export const ROUTER_KEEPALIVE: Keepalive = { intervalMs: 10_000, timeoutMs: 20_000 };

/** What `jmp router run` ends its streams with on SIGTERM. */
export const ROUTER_SHUTDOWN: DrainOptions = { message: "the router is shutting down", graceMs: 2_000 };

export interface RunRouterOptions extends RouterOptions {
  /** Where to listen; port 0 picks a free one (`address` tells which). */
  listen: { host: string; port: number };
  tls: { cert: string | Buffer; key: string | Buffer };
  /** Default: ROUTER_KEEPALIVE. */
  keepalive?: Keepalive;
}

/** `address` is HOST:PORT actually bound; `close(ROUTER_SHUTDOWN)` ends every stream with a status first. */
export type RunningRouter = Served;

export function runRouter(opts: RunRouterOptions): Promise<RunningRouter> {
  const log = opts.log ?? getLogger("router");
  const handler = routerHandler({ ...opts, log });
  // GET /metrics on the same port, over HTTP/1.1 too (see serveRoutes).
  const metrics = newRegistry();
  registerRouterMetrics(metrics, handler.stats);
  return serveRoutes(() => {}, { ...opts.listen, tls: opts.tls }, {
    raw: { [ROUTER_STREAM_PATH]: handler },
    keepalive: opts.keepalive ?? ROUTER_KEEPALIVE,
    log,
    metrics,
  });
}
