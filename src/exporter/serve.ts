/**
 * Serving a session: h2c on a Unix socket (local mode, and the socket router
 * streams are piped into), h2c or TLS on TCP (direct mode), with an optional
 * passphrase checked in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { type Listen, type Served, serveRoutes as serveHttp2 } from "../common/http2-server.ts";

export type { Listen, Served };

export const PASSPHRASE_HEADER = "x-jumpstarter-passphrase";

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

export function serveRoutes(routes: (r: ConnectRouter) => void, listen: Listen, opts: ServeOptions = {}): Promise<Served> {
  return serveHttp2(routes, listen, {
    interceptors: opts.passphrase ? [passphraseInterceptor(opts.passphrase, opts.onRejected)] : [],
  });
}
