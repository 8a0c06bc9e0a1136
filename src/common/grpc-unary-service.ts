/**
 * Some unary methods of a Connect service implementation answered over gRPC on the
 * raw HTTP/2 request (serveUnary, grpc-unary.ts), through the same interceptors and
 * the same handler Connect would run, for the calls made several times per lease.
 * A CPU profile of the controller under lease churn spent most of its JavaScript in
 * Connect's universal handler around each call (async iterables, a linked abort
 * controller and its DOMException at the end of every call, protocol negotiation),
 * as the exporter's DriverCall did before it went raw.
 *
 * What the interceptors and handler see is what Connect gives them: a UnaryRequest
 * with the request's headers, a HandlerContext (createHandlerContext) whose signal
 * aborts when the caller goes, its deadline passes or the server drains, and
 * response headers the handler sets are sent. Only gRPC in protobuf: gRPC-Web and
 * the Connect protocol on the same path are left to Connect (`isGrpc`).
 */
import type * as http2 from "node:http2";
import { create, type DescMessage, type DescMethod, type DescMethodUnary, type DescService, fromBinary, isMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  Code, ConnectError, type ContextValues, createContextValues, createHandlerContext, type HandlerContext, type Interceptor,
  type UnaryRequest, type UnaryResponse,
} from "@connectrpc/connect";
import { BroadcastSignal, type StopSignal } from "./broadcast-signal.ts";
import { isGrpc, serveUnary } from "./grpc-unary.ts";
import type { RawHandler } from "./http2-server.ts";

type UnaryImpl = (request: never, ctx: HandlerContext) => unknown;

export interface RawUnaryOptions {
  /** The interceptors the service's Connect routes run (not the server's drain check: a raw route is refused while draining). */
  interceptors: Interceptor[];
  maxBytes: number;
}

/** Fetch Headers as the plain record `writeHead` and `addTrailers` take. */
export function headerRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => (out[name] = value));
  return out;
}

/** The URL a raw route's request gives its interceptors and handler, as Connect's does. */
export function requestUrl(req: http2.Http2ServerRequest): string {
  return `https://${req.headers[":authority"] ?? "localhost"}${req.url}`;
}

/**
 * The handler's context for a call made through a raw route: Connect's, for `method`,
 * from what the interceptors passed on. No timeoutMs: the raw route keeps the deadline
 * and aborts the signal at it.
 */
export function rawHandlerContext(
  method: DescMethod,
  r: { url: string; header: Headers; signal: AbortSignal; contextValues: ContextValues },
): HandlerContext {
  return createHandlerContext({
    service: method.parent, method, protocolName: "grpc", requestMethod: "POST", url: r.url,
    requestHeader: r.header, requestSignal: r.signal, contextValues: r.contextValues,
  });
}

/** `call` wrapped in `interceptors` as Connect chains them: the first is the outermost. */
export function intercepted<C>(interceptors: readonly Interceptor[], call: C): C {
  return interceptors.reduceRight((next, interceptor) => interceptor(next as never) as unknown as C, call);
}

/** The request's headers as Fetch Headers, without HTTP/2's pseudo-headers. */
export function fetchHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    out.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return out;
}

/**
 * Raw routes (`/package.Service/Method` → handler) for the named unary methods of
 * `service`, answered by `impl`'s handlers; register them beside the Connect routes of
 * the same implementation.
 */
export function rawUnaryRoutes(
  service: DescService,
  impl: Record<string, unknown>,
  methodNames: readonly string[],
  opts: RawUnaryOptions,
): Record<string, RawHandler> {
  return rawRoutesFor<DescMethodUnary, UnaryImpl>(service, impl, methodNames, "unary", (req, res, method, fn, stop) => serveMethod(req, res, method, fn, opts, stop));
}

/**
 * Raw routes for the named methods of `service`, each of `kind` (throws for one that
 * is not, or that `impl` lacks), each served by `serve` with `impl`'s handler and a
 * signal aborted, with the status to end its calls with, when the server drains.
 */
export function rawRoutesFor<M extends DescMethod, F>(
  service: DescService,
  impl: Record<string, unknown>,
  methodNames: readonly string[],
  kind: M["methodKind"],
  serve: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, method: M, fn: F, stop: StopSignal) => void,
): Record<string, RawHandler> {
  // Each open call listens to it: a Status stream per exporter, so a Set (broadcast-signal.ts).
  const stopped = new BroadcastSignal();
  const shutdown = (message: string) => stopped.abort(new ConnectError(message, Code.Unavailable));
  const routes: Record<string, RawHandler> = {};
  for (const name of methodNames) {
    const method = service.methods.find((m) => m.name === name);
    if (method?.methodKind !== kind) throw new Error(`${service.typeName} has no ${kind.replace("_", "-")} method ${name}`);
    const fn = impl[method.localName];
    if (typeof fn !== "function") throw new Error(`the implementation of ${service.typeName} has no ${method.localName}`);
    routes[`/${service.typeName}/${method.name}`] = Object.assign(
      (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => serve(req, res, method as M, fn as F, stopped),
      { accepts: isGrpc, shutdown },
    );
  }
  return routes;
}

function serveMethod<I extends DescMessage, O extends DescMessage>(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  method: DescMethodUnary<I, O>,
  fn: UnaryImpl,
  opts: RawUnaryOptions,
  stop: StopSignal,
): void {
  const headers: Record<string, string> = {};
  const call = async (r: UnaryRequest<I, O>): Promise<UnaryResponse<I, O>> => {
    const ctx = rawHandlerContext(method, r);
    const out = await (fn as (request: MessageShape<I>, ctx: HandlerContext) => unknown)(r.message, ctx);
    const message = isMessage(out, method.output) ? out : create(method.output, out as never);
    return { stream: false, service: method.parent, method, header: ctx.responseHeader, trailer: ctx.responseTrailer, message };
  };
  const chain = intercepted(opts.interceptors, call);
  serveUnary(req, res, {
    decode: (bytes) => fromBinary(method.input, bytes),
    encode: (reply: MessageShape<O>) => toBinary(method.output, reply),
    handle: async (message, signal) => {
      const reply = await chain({
        stream: false, service: method.parent, method, requestMethod: "POST", url: requestUrl(req),
        signal, header: fetchHeaders(req.headers), contextValues: createContextValues(), message,
      });
      Object.assign(headers, headerRecord(reply.header));
      return reply.message;
    },
    failed: (e) => ConnectError.from(e),
    stop,
    maxBytes: opts.maxBytes,
    headers,
  });
}
