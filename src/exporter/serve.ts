/**
 * Serving a session: h2c on a Unix socket (local mode, and the socket router
 * streams are piped into), h2c or TLS on TCP (direct mode), with an optional
 * passphrase checked in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { type Listen, type RawHandler, type Served, serveRoutes as serveHttp2 } from "../common/http2-server.ts";
import { statusTrailers } from "../common/grpc-raw.ts";
import { STREAM_ERROR_HEADER } from "../driver/raw-stream.ts";

export type { Listen, Served };

export const PASSPHRASE_HEADER = "x-jumpstarter-passphrase";

export interface ServeOptions {
  passphrase?: string;
  onRejected?: (method: string) => void;
}

/** Compares digests, so lengths leak nothing and the comparison takes constant time. */
function passphraseCheck(passphrase: string): (given: string | null | undefined) => boolean {
  const expected = createHash("sha256").update(passphrase).digest();
  return (given) => typeof given === "string" && timingSafeEqual(createHash("sha256").update(given).digest(), expected);
}

function passphraseInterceptor(passphrase: string, onRejected?: (m: string) => void): Interceptor {
  const check = passphraseCheck(passphrase);
  return (next) => async (req) => {
    if (!check(req.header.get(PASSPHRASE_HEADER))) {
      onRejected?.(req.method.name);
      throw new ConnectError("invalid or missing passphrase", Code.Unauthenticated);
    }
    return next(req);
  };
}

/** The same check for a raw handler (no Connect interceptors there): refused as gRPC UNAUTHENTICATED. */
function passphraseGuard(passphrase: string, name: string, handler: RawHandler, onRejected?: (m: string) => void): RawHandler {
  const check = passphraseCheck(passphrase);
  return (req, res) => {
    if (check(req.headers[PASSPHRASE_HEADER] as string | undefined)) return handler(req, res);
    onRejected?.(name);
    // As for any stream that cannot be opened: the client waits for the error in the trailers.
    res.writeHead(200, { "content-type": "application/grpc", [STREAM_ERROR_HEADER]: "1" });
    res.addTrailers(statusTrailers(Code.Unauthenticated, "invalid or missing passphrase"));
    res.end();
  };
}

/** A session's routes: its Connect services and its raw RouterService.Stream. */
export interface SessionRoutes {
  routes: (r: ConnectRouter) => void;
  rawRoutes: Record<string, RawHandler>;
}

export function serveRoutes(session: SessionRoutes, listen: Listen, opts: ServeOptions = {}): Promise<Served> {
  const raw = Object.fromEntries(Object.entries(session.rawRoutes).map(([path, handler]) => [
    path,
    opts.passphrase ? passphraseGuard(opts.passphrase, path.slice(path.lastIndexOf("/") + 1), handler, opts.onRejected) : handler,
  ]));
  return serveHttp2(session.routes, listen, {
    interceptors: opts.passphrase ? [passphraseInterceptor(opts.passphrase, opts.onRejected)] : [],
    raw,
  });
}
