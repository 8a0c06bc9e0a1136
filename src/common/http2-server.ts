/**
 * One HTTP/2 server for Connect routes, shared by every role: h2c on a Unix socket
 * or TCP, or TLS on TCP, with wide flow-control windows (http2-window.ts).
 * `close()` ends open sessions too, so long streams do not hold a shutdown.
 */
import { rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { widenConnectionWindow, WINDOW_SETTINGS } from "./http2-window.ts";

export type Listen =
  | { unix: string }
  | { host: string; port: number; tls?: { cert: string | Buffer; key: string | Buffer } };

/**
 * A path answered by hand on the raw HTTP/2 request instead of through Connect:
 * the router, which passes gRPC bodies through without decoding them.
 */
export type RawHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

export interface Served {
  /** The socket path, or HOST:PORT with the port actually bound. */
  address: string;
  close(): Promise<void>;
}

export async function serveRoutes(
  routes: (r: ConnectRouter) => void,
  listen: Listen,
  opts: { interceptors?: Interceptor[]; raw?: Record<string, RawHandler> } = {},
): Promise<Served> {
  const connect = connectNodeAdapter({ routes, interceptors: opts.interceptors ?? [] });
  const raw = new Map(Object.entries(opts.raw ?? {}));
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => (raw.get(req.url) ?? connect)(req, res);
  const server = "tls" in listen && listen.tls
    ? http2.createSecureServer({ cert: listen.tls.cert, key: listen.tls.key, allowHTTP1: false, settings: WINDOW_SETTINGS }, handler)
    : http2.createServer({ settings: WINDOW_SETTINGS }, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    widenConnectionWindow(s);
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
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
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
        if ("unix" in listen) rmSync(listen.unix, { force: true });
      }),
  };
}
