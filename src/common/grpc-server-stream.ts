/**
 * Server-streaming methods of a Connect service implementation answered over gRPC on
 * the raw HTTP/2 request, as grpc-unary-service.ts does for unary ones: the Status
 * stream each exporter holds open and the Listen stream each lease opens. With 10 000
 * exporters, Connect's machinery around each of these (a linked AbortController, async
 * iterables for the request, the response and each envelope, header objects) was a
 * tenth of the controller's CPU under lease churn, and objects kept per open stream.
 *
 * What the interceptors and handler see is what Connect gives them: a StreamRequest
 * holding the one request message and the request's headers, a HandlerContext whose
 * signal aborts when the caller goes, its deadline passes or the server drains, and
 * the response headers and trailers the handler sets. Each message the handler yields
 * is written as it comes, waiting while the peer reads slower. A drain ends the call
 * with the drain's status whatever the handler does then; the caller's own cancel
 * ends it without a status (the stream is gone). Only gRPC in protobuf (`isGrpc`).
 */
import type * as http2 from "node:http2";
import { create, type DescMessage, type DescMethodServerStreaming, type DescService, fromBinary, isMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  Code, ConnectError, createContextValues, type HandlerContext, type StreamRequest, type StreamResponse,
} from "@connectrpc/connect";
import type { StopSignal } from "./broadcast-signal.ts";
import { statusTrailers } from "./grpc-raw.ts";
import { envelope, readRequest, startDeadline } from "./grpc-unary.ts";
import { fetchHeaders, headerRecord, intercepted, rawHandlerContext, rawRoutesFor, type RawUnaryOptions, requestUrl } from "./grpc-unary-service.ts";
import type { RawHandler } from "./http2-server.ts";

type StreamImpl = (request: never, ctx: HandlerContext) => AsyncIterable<unknown>;

/**
 * Raw routes (`/package.Service/Method` → handler) for the named server-streaming
 * methods of `service`, answered by `impl`'s handlers.
 */
export function rawServerStreamRoutes(
  service: DescService,
  impl: Record<string, unknown>,
  methodNames: readonly string[],
  opts: RawUnaryOptions,
): Record<string, RawHandler> {
  return rawRoutesFor<DescMethodServerStreaming, StreamImpl>(
    service, impl, methodNames, "server_streaming", (req, res, method, fn, stop) => serveStream(req, res, method, fn, opts, stop),
  );
}

async function* one<T>(message: T): AsyncIterable<T> {
  yield message;
}

function serveStream<I extends DescMessage, O extends DescMessage>(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  method: DescMethodServerStreaming<I, O>,
  fn: StreamImpl,
  opts: RawUnaryOptions,
  stop: StopSignal,
): void {
  const abort = new AbortController();
  let finished = false;
  let headed = false;
  /** The handler's response headers, once it has answered. */
  let header: Headers | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Wakes a write waiting for the peer to read. */
  let wake: (() => void) | undefined;
  const cleanup = () => {
    finished = true;
    if (timer) clearTimeout(timer);
    stop.removeEventListener("abort", onStop);
    wake?.();
  };
  /** Ends the call with `err`'s status, or OK and the handler's trailers. */
  const finish = (err?: ConnectError, trailer?: Headers) => {
    if (finished) return;
    cleanup();
    if (res.stream.destroyed || res.stream.closed) return;
    const status = err ? statusTrailers(err.code, err.rawMessage) : statusTrailers(0);
    if (!headed) {
      // No message sent: a trailers-only answer, as Connect gives.
      const own = { ...(header ? headerRecord(header) : {}), ...(trailer ? headerRecord(trailer) : {}) };
      res.writeHead(200, { ...own, "content-type": "application/grpc", ...status });
      return void res.end();
    }
    res.addTrailers({ ...(trailer ? headerRecord(trailer) : {}), ...status });
    res.end();
  };
  const onStop = () => {
    abort.abort(stop.reason);
    finish(stop.reason as ConnectError);
  };
  if (stop.aborted) return finish(stop.reason as ConnectError);
  stop.addEventListener("abort", onStop, { once: true });
  res.once("close", () => {
    if (finished) return;
    cleanup();
    abort.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  });
  req.on("error", () => {});
  res.on("error", () => {});
  timer = startDeadline(req, abort, (err) => finish(err));

  const call = async (r: StreamRequest<I, O>): Promise<StreamResponse<I, O>> => {
    const ctx = rawHandlerContext(method, r);
    let request: MessageShape<I> | undefined;
    for await (const m of r.message) request ??= m;
    const replies = (fn as (request: MessageShape<I>, ctx: HandlerContext) => AsyncIterable<unknown>)(request!, ctx);
    async function* messages(): AsyncIterable<MessageShape<O>> {
      for await (const out of replies) yield isMessage(out, method.output) ? out : create(method.output, out as never);
    }
    return { stream: true, service: method.parent, method, header: ctx.responseHeader, trailer: ctx.responseTrailer, message: messages() };
  };
  const chain = intercepted(opts.interceptors, call);

  /** Resolves once the peer has read enough for more, or the call is over. */
  const writable = () => new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      wake = undefined;
      resolve();
    };
    wake = done;
    res.once("drain", done);
  });

  readRequest(req, opts.maxBytes, () => finished, async (bytes) => {
    let request: MessageShape<I>;
    try {
      request = fromBinary(method.input, bytes);
    } catch (e) {
      return finish(new ConnectError(`cannot decode the request: ${(e as Error).message}`, Code.InvalidArgument));
    }
    let it: AsyncIterator<MessageShape<O>> | undefined;
    try {
      const response = await chain({
        stream: true, service: method.parent, method, requestMethod: "POST", url: requestUrl(req),
        signal: abort.signal, header: fetchHeaders(req.headers), contextValues: createContextValues(), message: one(request),
      });
      if (finished) return;
      header = response.header;
      it = response.message[Symbol.asyncIterator]();
      for (;;) {
        const r = await it.next();
        if (r.done || finished) break;
        // The headers go with the first message: an error before it is a trailers-only answer.
        if (!headed) {
          res.writeHead(200, { ...headerRecord(header), "content-type": "application/grpc" });
          headed = true;
        }
        if (!res.write(envelope(toBinary(method.output, r.value)))) await writable();
      }
      finish(undefined, response.trailer);
    } catch (e) {
      // Ended by the drain: the call says so rather than how the handler took it.
      finish(stop.aborted ? stop.reason as ConnectError : ConnectError.from(e));
    } finally {
      // The call ended first (the caller went, a drain, the deadline): the handler's generator stops too.
      if (finished) void it?.return?.()?.catch(() => {});
    }
  }, (err) => finish(err));
}
