/**
 * Serving a session over HTTP/2: h2c on a Unix socket (local mode, and the socket
 * router streams are piped into), h2c or TLS on TCP (direct mode), with an
 * optional passphrase checked in constant time.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

export const PASSPHRASE_HEADER = "x-jumpstarter-passphrase";

export type Listen =
  | { unix: string }
  | { host: string; port: number; tls?: { cert: string | Buffer; key: string | Buffer } };

export interface Served {
  /** The socket path, or host:port with the port actually bound. */
  address: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  passphrase?: string;
  onRejected?: (method: string) => void;
}

function passphraseInterceptor(passphrase: string, onRejected?: (m: string) => void): Interceptor {
  // Compare digests so lengths leak nothing and the comparison takes constant time.
  const expected = createHash("sha256").update(passphrase).digest();
  return (next) => async (req) => {
    const given = req.header.get(PASSPHRASE_HEADER);
    const ok = given !== null && timingSafeEqual(createHash("sha256").update(given).digest(), expected);
    if (!ok) {
      onRejected?.(req.method.name);
      throw new ConnectError("invalid or missing passphrase", Code.Unauthenticated);
    }
    return next(req);
  };
}

export async function serveRoutes(routes: (r: ConnectRouter) => void, listen: Listen, opts: ServeOptions = {}): Promise<Served> {
  const handler = connectNodeAdapter({
    routes,
    interceptors: opts.passphrase ? [passphraseInterceptor(opts.passphrase, opts.onRejected)] : [],
  });
  const server = "tls" in listen && listen.tls
    ? http2.createSecureServer({ cert: listen.tls.cert, key: listen.tls.key, allowHTTP1: false }, handler)
    : http2.createServer({}, handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if ("unix" in listen) {
      rmSync(listen.unix, { force: true });
      server.listen(listen.unix, () => resolve());
    } else {
      server.listen(listen.port, listen.host, () => resolve());
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
