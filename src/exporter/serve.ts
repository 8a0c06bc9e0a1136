/**
 * Serving a session: h2c on a Unix socket (local mode, and the socket router
 * streams are piped into), h2c or TLS on TCP (direct mode), with an optional
 * passphrase checked in constant time. A close ends the clients' open calls with
 * UNAVAILABLE "the exporter is shutting down" before it closes their connections.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { metricsInterceptors } from "./metrics.ts";
import { type DrainOptions, type Listen, type RawHandler, type Served, serveRoutes as serveHttp2 } from "../common/http2-server.ts";
import { statusTrailers } from "../common/grpc-raw.ts";
import { getLogger } from "../common/log.ts";
import type { Keepalive } from "../common/remote-connection.ts";
import { STREAM_ERROR_HEADER } from "../driver/raw-stream.ts";

export type { Listen, Served };

export const PASSPHRASE_HEADER = "x-jumpstarter-passphrase";

/**
 * Direct mode (TCP): a client laptop that vanished (closed lid, lost Wi-Fi) is
 * dropped within 30 s, which ends its driver streams and frees the devices they
 * hold. The 20 s to answer is generous on purpose: a client flashing an image
 * sends its PING answer behind the image data already in its socket's send buffer
 * (megabytes, on a slow uplink), and a busy client is not a gone one.
 *
 * A Unix socket gets no PINGs: the kernel closes it at once when its peer process
 * dies, and the peer is either our own router pipe (distributed mode, which PINGs
 * the router itself) or a local process that may be suspended (Ctrl-Z) and must
 * find its connection alive when it resumes.
 */
export const DIRECT_KEEPALIVE: Keepalive = { intervalMs: 10_000, timeoutMs: 20_000 };

/**
 * What a close does by default. The grace lets a driver call in flight finish
 * (its signal is aborted, so one that honours it ends at once); streams end
 * with the status at once.
 */
export const EXPORTER_SHUTDOWN: DrainOptions = { message: "the exporter is shutting down", graceMs: 2_000 };

export interface ServeOptions {
  passphrase?: string;
  onRejected?: (method: string) => void;
  /** Default: DIRECT_KEEPALIVE on TCP, none on a Unix socket. */
  keepalive?: Keepalive;
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
  const guarded = (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (check(req.headers[PASSPHRASE_HEADER] as string | undefined)) return handler(req, res);
    onRejected?.(name);
    // As for any stream that cannot be opened: the client waits for the error in the trailers.
    res.writeHead(200, { "content-type": "application/grpc", [STREAM_ERROR_HEADER]: "1" });
    res.addTrailers(statusTrailers(Code.Unauthenticated, "invalid or missing passphrase"));
    res.end();
  };
  return Object.assign(guarded, { shutdown: handler.shutdown?.bind(handler), accepts: handler.accepts?.bind(handler), bulk: handler.bulk });
}

/** A session's routes: its Connect services and its raw RouterService.Stream. */
export interface SessionRoutes {
  routes: (r: ConnectRouter) => void;
  rawRoutes: Record<string, RawHandler>;
}

/** `close()` drains with EXPORTER_SHUTDOWN; give other options to say something else (a lease that ended). */
export async function serveRoutes(session: SessionRoutes, listen: Listen, opts: ServeOptions = {}): Promise<Served> {
  const raw = Object.fromEntries(Object.entries(session.rawRoutes).map(([path, handler]) => [
    path,
    opts.passphrase ? passphraseGuard(opts.passphrase, path.slice(path.lastIndexOf("/") + 1), handler, opts.onRejected) : handler,
  ]));
  const served = await serveHttp2(session.routes, listen, {
    interceptors: [...metricsInterceptors(), ...(opts.passphrase ? [passphraseInterceptor(opts.passphrase, opts.onRejected)] : [])],
    raw,
    keepalive: opts.keepalive ?? ("unix" in listen ? undefined : DIRECT_KEEPALIVE),
    log: getLogger("exporter"),
  });
  return {
    address: served.address,
    get openCalls() {
      return served.openCalls;
    },
    close: (drain = EXPORTER_SHUTDOWN) => served.close(drain),
  };
}
