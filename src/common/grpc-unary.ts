/**
 * A gRPC unary call answered on the raw `node:http2` request, for the one call
 * that is made thousands of times a lease: ExporterService.DriverCall. Connect's
 * universal handler wraps each call in async iterables, header objects, an
 * AbortController and several promise hops; a CPU profile of an exporter under
 * a call loop spent about half its JavaScript time there. This reads the one
 * message, runs the handler and writes the reply and trailers directly.
 *
 * What it keeps of Connect's server behaviour: a message over the size cap is
 * RESOURCE_EXHAUSTED, gzip-compressed requests are read, `grpc-timeout` ends the
 * call with DEADLINE_EXCEEDED, a client reset aborts the handler's signal, and a
 * drain (`stop`) aborts it with the drain's status, which the call ends with if
 * the handler then fails. Only the gRPC protocol: `isGrpc` tells the server to
 * leave gRPC-Web and Connect requests to Connect.
 */
import type * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { StopSignal } from "./broadcast-signal.ts";
import { statusTrailers } from "./grpc-raw.ts";

const GRPC = /^application\/grpc(\+proto)?(;|$)/;

/** True for the gRPC protocol in protobuf (what this answers); Connect serves the rest. */
export function isGrpc(req: http2.Http2ServerRequest): boolean {
  return req.method === "POST" && GRPC.test(req.headers["content-type"] ?? "");
}

const UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` in ms (at least 1), or undefined when absent or malformed (as Connect: no deadline). */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  const m = typeof value === "string" ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return m ? Math.max(1, Math.ceil(Number(m[1]) * UNITS[m[2]!]!)) : undefined;
}

export interface UnaryCall<I, O> {
  decode(bytes: Uint8Array): I;
  encode(reply: O): Uint8Array;
  /** Throws a ConnectError (or anything; see `failed`) to end the call with an error. */
  handle(request: I, signal: AbortSignal): Promise<O>;
  /** The status for an error `handle` threw (and logs it, as the caller sees fit). */
  failed(e: unknown, request: I): ConnectError;
  /** Aborted with a ConnectError when the server drains. */
  stop: StopSignal;
  maxBytes: number;
  /** Told each call's gRPC status code and how long it took (metrics), once. */
  observe?: (code: number, ms: number) => void;
  /** Response headers (the handler's metadata), read when the reply is written. */
  headers?: Record<string, string>;
}

/** Reads one length-prefixed message; throws a ConnectError for what is not one. */
function readMessage(body: Uint8Array, encoding: string, maxBytes: number): Uint8Array {
  if (body.byteLength < 5) throw new ConnectError("protocol error: incomplete message envelope", Code.InvalidArgument);
  const length = new DataView(body.buffer, body.byteOffset, 5).getUint32(1);
  if (length > maxBytes) throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
  if (body.byteLength !== 5 + length) throw new ConnectError("protocol error: a unary request must hold exactly one message", Code.InvalidArgument);
  const msg = body.subarray(5);
  if (!(body[0]! & 1)) return msg;
  if (encoding !== "gzip") throw new ConnectError(`unsupported grpc-encoding '${encoding}'`, Code.Unimplemented);
  return gunzipSync(msg);
}

export function serveUnary<I, O>(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, call: UnaryCall<I, O>): void {
  const abort = new AbortController();
  let finished = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const started = call.observe ? performance.now() : 0;
  const finish = (reply?: Uint8Array, err?: ConnectError) => {
    if (finished) return;
    finished = true;
    call.observe?.(err ? err.code : 0, performance.now() - started);
    if (timer) clearTimeout(timer);
    call.stop.removeEventListener("abort", onStop);
    if (res.stream.destroyed || res.stream.closed) return;
    res.writeHead(200, { ...call.headers, "content-type": "application/grpc" });
    res.addTrailers(err ? statusTrailers(err.code, err.rawMessage) : statusTrailers(0));
    if (!reply) return void res.end();
    res.end(envelope(reply));
  };
  const onStop = () => abort.abort(call.stop.reason);
  if (call.stop.aborted) return finish(undefined, call.stop.reason as ConnectError);
  call.stop.addEventListener("abort", onStop, { once: true });
  // A reset or a dropped connection: the handler's signal says so.
  res.once("close", () => {
    if (!finished) {
      finished = true;
      call.observe?.(Code.Canceled, performance.now() - started);
      if (timer) clearTimeout(timer);
      call.stop.removeEventListener("abort", onStop);
      abort.abort(new ConnectError("the client cancelled the call", Code.Canceled));
    }
  });
  req.on("error", () => {});
  res.on("error", () => {});
  timer = startDeadline(req, abort, (err) => finish(undefined, err));

  readRequest(req, call.maxBytes, () => finished, (bytes) => {
    let request: I;
    try {
      request = call.decode(bytes);
    } catch (e) {
      return finish(undefined, new ConnectError(`cannot decode the request: ${(e as Error).message}`, Code.InvalidArgument));
    }
    call.handle(request, abort.signal).then(
      (reply) => finish(call.encode(reply)),
      (e) => {
        if (finished) return;
        // Ended by the drain: the call says so rather than how the handler took it.
        finish(undefined, call.stop.aborted ? call.stop.reason as ConnectError : call.failed(e, request));
      },
    );
  }, (err) => finish(undefined, err));
}

/**
 * A gRPC message envelope (uncompressed) holding `bytes`, as one buffer: the head
 * and the message written apart would be two trips into Bun's HTTP/2 framing.
 */
export function envelope(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.byteLength);
  new DataView(out.buffer).setUint32(1, bytes.byteLength);
  out.set(bytes, 5);
  return out;
}

/**
 * The call's `grpc-timeout`, if it sent one: when it passes, the handler's signal
 * aborts with DEADLINE_EXCEEDED and `expired` ends the call so. The timer, to clear.
 */
export function startDeadline(
  req: http2.Http2ServerRequest,
  abort: AbortController,
  expired: (err: ConnectError) => void,
): ReturnType<typeof setTimeout> | undefined {
  const timeoutMs = grpcTimeoutMs(req.headers["grpc-timeout"]);
  if (timeoutMs === undefined) return undefined;
  return setTimeout(() => {
    const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
    abort.abort(err);
    expired(err);
  }, timeoutMs);
}

/**
 * Reads the one message of a request (unary or server-streaming): `onMessage` gets
 * its bytes, or `onError` what stops it (over the size cap, not one envelope, an
 * encoding it cannot read), unless `ended()` says the call is over already.
 */
export function readRequest(
  req: http2.Http2ServerRequest,
  maxBytes: number,
  ended: () => boolean,
  onMessage: (bytes: Uint8Array) => void,
  onError: (err: ConnectError) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on("data", (chunk: Buffer) => {
    if (refused) return;
    size += chunk.byteLength;
    // The envelope's 5 bytes on top of the cap; readMessage says which limit it broke.
    if (size > maxBytes + 5) {
      refused = true;
      if (!ended()) onError(new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted));
      return;
    }
    chunks.push(chunk);
  });
  req.once("end", () => {
    if (refused || ended() || req.aborted) return;
    let bytes: Uint8Array;
    try {
      bytes = readMessage(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), String(req.headers["grpc-encoding"] ?? "identity"), maxBytes);
    } catch (e) {
      return onError(e instanceof ConnectError ? e : new ConnectError(`cannot decode the request: ${(e as Error).message}`, Code.InvalidArgument));
    }
    onMessage(bytes);
  });
}
