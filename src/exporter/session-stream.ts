/**
 * RouterService.Stream on a session, answered on the raw HTTP/2 request with the
 * hand codec of src/common/router-frames.ts, as the router does. Every byte a
 * driver stream or a flashed image moves passes here, and Connect's generic
 * codec allocated and copied each message twice on the way in and twice on the
 * way out; here an incoming payload is a view of the chunk it arrived in and an
 * outgoing one is written as it is. The gRPC it speaks is what Connect spoke:
 * initial headers (with the stream's metadata) and a PING at once, DATA frames
 * of at most 256 KiB, GOAWAY when the driver's side ends, then grpc-status in
 * the trailers; a stream that cannot be opened gets `x-jmp-stream-error` in its
 * headers and the error in its trailers.
 */
import type * as http2 from "node:http2";
import { type ConnectError } from "@connectrpc/connect";
import { refuseNonGrpc, statusTrailers, writeFrame } from "../common/grpc-raw.ts";
import { FrameError } from "../common/router-frames.ts";
import { PiecewiseFrameDecoder } from "../common/data-frames.ts";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import type { ByteStream } from "../driver/byte-stream.ts";
import { toConnectError } from "../driver/connect-errors.ts";
import { STREAM_ERROR_HEADER } from "../driver/raw-stream.ts";

/** Upstream's Python peers take messages up to 4 MiB; keep frames well below. */
const MAX_FRAME = 256 * 1024;

export interface ByteStreamCall {
  /** Opens the driver's side from the call's `request` metadata; throws a ConnectError when it cannot. */
  open(signal: AbortSignal): Promise<ByteStream>;
  /** Logs a failure and gives the error to send. */
  failed(e: unknown): ConnectError;
  /** Aborted with a ConnectError when the server drains: the stream ends with it, and the driver's side is cancelled. */
  stop?: AbortSignal;
}

export function serveByteStream(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, call: ByteStreamCall): void {
  if (refuseNonGrpc(req, res, "RouterService.Stream")) return;
  let headersSent = false;
  let finished = false;
  const abort = new AbortController();
  // A reset or a dropped connection: stop both directions of the driver's stream.
  res.once("close", () => {
    if (!finished) abort.abort(new Error("the client went away"));
  });
  req.on("error", () => {});
  res.on("error", () => {});

  const finish = (err?: ConnectError, headers: Record<string, string> = {}) => {
    if (finished) return;
    finished = true;
    if (res.stream.destroyed || res.stream.closed) return;
    if (!headersSent) res.writeHead(200, { "content-type": "application/grpc", ...headers });
    headersSent = true;
    res.addTrailers(err ? statusTrailers(err.code, err.rawMessage) : statusTrailers(0));
    res.end();
  };
  // Ends the call with the drain's status first, so that nothing is written after it.
  const onStop = () => {
    finish(toConnectError(call.stop?.reason), headersSent ? {} : { [STREAM_ERROR_HEADER]: "1" });
    abort.abort(call.stop?.reason);
  };
  if (call.stop?.aborted) return onStop();
  call.stop?.addEventListener("abort", onStop, { once: true });
  res.once("close", () => call.stop?.removeEventListener("abort", onStop));
  const send = (frameType: FrameType, payload?: Uint8Array) => writeFrame(res, frameType, payload);
  const drained = () => new Promise<void>((resolve) => {
    const go = () => {
      res.off("drain", go);
      res.off("close", go);
      resolve();
    };
    res.on("drain", go);
    res.on("close", go);
  });

  void (async () => {
    let local: ByteStream;
    try {
      local = await call.open(abort.signal);
    } catch (e) {
      // Ended by the drain already: the driver's failure to open is its doing, not worth a line.
      if (call.stop?.aborted) return;
      // Our client waits for the error in the trailers rather than a stream.
      return finish(call.failed(e), { [STREAM_ERROR_HEADER]: "1" });
    }
    if (abort.signal.aborted) {
      void local.readable.cancel().catch(() => {});
      void local.writable.abort().catch(() => {});
      return;
    }
    res.writeHead(200, { "content-type": "application/grpc", ...local.metadata });
    headersSent = true;
    // Upstream's clients wait for the headers before they send; a PING (which every
    // peer ignores) makes them go out now.
    send(FrameType.PING);
    const unlisten = local.notices?.listen((text) => {
      if (!finished && !abort.signal.aborted) send(FrameType.PING, new TextEncoder().encode(text));
    });
    abort.signal.addEventListener("abort", () => unlisten?.(), { once: true });

    const inbound = receive(req, local.writable, abort.signal, local.gatherWrites === true);
    const reader = local.readable.getReader();
    const onAbort = () => void reader.cancel().catch(() => {});
    abort.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (let at = 0; at < value.byteLength; at += MAX_FRAME) {
          if (abort.signal.aborted) return;
          if (!send(FrameType.DATA, value.subarray(at, at + MAX_FRAME))) await drained();
        }
      }
      if (abort.signal.aborted) return;
      send(FrameType.GOAWAY);
      // The other direction may still be sending (a half-closed TCP connection).
      const refused = await inbound;
      finish(refused);
    } catch (e) {
      if (!abort.signal.aborted) finish(toConnectError(e));
    } finally {
      abort.signal.removeEventListener("abort", onAbort);
      unlisten?.();
      reader.releaseLock();
    }
  })();
}

/**
 * The client's frames into the driver's writable until GOAWAY or the end of
 * the request. Paused while the driver is behind, so HTTP/2 flow control holds
 * the sender. Resolves with an error to send only for frames it cannot read.
 *
 * Read from the HTTP/2 stream itself: the compat request re-pushes every 16 KiB
 * chunk through a second Readable, which was a tenth of the exporter's CPU in a
 * flash. Its own 'data' listener comes off, or it would buffer the whole request
 * and pause the stream when full.
 *
 * A message comes out in the 16 KiB pieces it arrived in. A writable that is a
 * socket (`gatherWrites`) gets each message as one buffer instead: one copy costs
 * less than a write, a syscall and a short TCP segment train per piece (a port
 * forward, six runs each: 366 → 392 MB/s, the session 1.67 → 1.54 s of CPU per GiB,
 * the receiving program 1.15 → 0.86). A file takes pieces as cheaply, and there the
 * copy would be the cost (a streamed flash measured ~5% more CPU with it).
 */
function receive(req: http2.Http2ServerRequest, writable: WritableStream<Uint8Array>, signal: AbortSignal, gather: boolean): Promise<ConnectError | undefined> {
  const writer = writable.getWriter();
  const decoder = new PiecewiseFrameDecoder(String(req.headers["grpc-encoding"] ?? "identity"));
  const source = req.stream;
  source.removeAllListeners("data");
  return new Promise((resolve) => {
    let done = false;
    const stop = (how: "close" | "abort", err?: ConnectError) => {
      if (done) return;
      done = true;
      source.removeAllListeners("data");
      const ended = how === "close" ? writer.close() : writer.abort(err ?? signal.reason);
      ended.catch(() => {}).finally(() => resolve(err));
    };
    signal.addEventListener("abort", () => stop("abort"), { once: true });
    source.on("data", (chunk: Buffer) => {
      if (done) return;
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        return stop("abort", toConnectError(e instanceof FrameError ? new TypeError(e.message) : e));
      }
      for (const frame of frames) {
        if (frame.frameType === FrameType.GOAWAY) return stop("close");
        if (frame.frameType !== FrameType.DATA) continue;
        if (gather && frame.pieces.length > 1) writer.write(Buffer.concat(frame.pieces)).catch(() => {});
        else for (const piece of frame.pieces) writer.write(piece).catch(() => {});
        if ((writer.desiredSize ?? 1) <= 0 && !source.isPaused()) {
          source.pause();
          writer.ready.then(() => source.resume(), () => {});
        }
      }
    });
    // Bun emits 'end' after a reset too; a reset is the abort above, not a clean end.
    source.once("end", () => {
      if (!req.aborted) stop("close");
    });
  });
}
