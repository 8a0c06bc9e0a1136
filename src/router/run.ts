/**
 * A router on its own (`jmp router run`): RouterService over HTTP/2 with TLS on one
 * TCP port. The controller embeds the same routes on its own port instead.
 */
import { serveRoutes } from "../common/http2-server.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { type RouterOptions, routerHandler } from "./router.ts";

export interface RunRouterOptions extends RouterOptions {
  /** Where to listen; port 0 picks a free one (`address` tells which). */
  listen: { host: string; port: number };
  tls: { cert: string | Buffer; key: string | Buffer };
}

export interface RunningRouter {
  /** HOST:PORT actually bound. */
  address: string;
  close(): Promise<void>;
}

export function runRouter(opts: RunRouterOptions): Promise<RunningRouter> {
  return serveRoutes(() => {}, { ...opts.listen, tls: opts.tls }, { raw: { [ROUTER_STREAM_PATH]: routerHandler(opts) } });
}
