/**
 * The client's side of a byte stream on the raw HTTP/2 request, with the hand
 * codec of src/common/router-frames.ts instead of Connect's generic one (which
 * copies each payload twice each way): what a flash or a port forward moves
 * passes here. Used when the portal's connection can open raw streams (our own
 * session connections); the gRPC on the wire is the same, so it works against
 * upstream's exporters too.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStatus, headersStatus, writeFrame } from "../common/grpc-raw.ts";
import { encodeFrame, FrameDecoder, ROUTER_STREAM_PATH, type RouterFrame } from "../common/router-frames.ts";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { Notices, type ByteStream } from "./byte-stream.ts";
import { fromConnectError } from "./connect-errors.ts";

/** Opens a request on the session's HTTP/2 connection; `read` is called as response bytes arrive. */
export type RawStreamOpener = (headers: http2.OutgoingHttpHeaders) => Promise<{ stream: http2.ClientHttp2Stream; read?: () => void }>;

/** Set by our exporter on a byte stream it failed to open (see session-stream.ts). */
export const STREAM_ERROR_HEADER = "x-jmp-stream-error";

/**
 * Opens RouterService.Stream with upstream's `request` metadata and waits for the
 * exporter's initial headers (the stream's metadata, e.g. a resource handle), as
 * upstream's client does. Both directions done ends the call, because upstream's
 * exporters hold a stream's device open until then.
 */
export async function openRawByteStream(open: RawStreamOpener, request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream> {
  const what = `stream ${String(request.method ?? request.kind)}`;
  let opened;
  try {
    opened = await open({ ":method": "POST", ...streamRequestHeaders(request) });
  } catch (e) {
    throw fromConnectError(e instanceof ConnectError ? e : new ConnectError((e as Error).message, Code.Unavailable), what);
  }
  const { stream, read } = opened;
  stream.on("error", () => {});
  // Registered now: a refused stream's headers, trailers and close can all come
  // in one go, before any later listener would be attached.
  const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
  // The response is over (trailers in) at 'end'; Bun emits 'close' only once our
  // own side has ended too.
  const answered = Promise.race([closed, new Promise<void>((resolve) => stream.once("end", () => resolve()))]);
  let failure: Error | undefined;
  let trailers: http2.IncomingHttpHeaders | undefined;
  stream.on("trailers", (t) => (trailers = t));
  const failed = (e: unknown) => (failure ??= fromConnectError(e, what));
  const onAbort = () => stream.close(0x8 /* CANCEL */);
  signal?.addEventListener("abort", onAbort, { once: true });

  // The headers, or the error of a stream that could not be opened.
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.once("response", resolve);
    void closed.then(() => reject(failed((trailers && endStatus(trailers)) ?? new ConnectError(resetReason(stream), Code.Unavailable))));
  }).catch((e: Error) => {
    signal?.removeEventListener("abort", onAbort);
    throw e;
  });
  if (isRefusal(headers)) {
    stream.resume();
    await answered;
    signal?.removeEventListener("abort", onAbort);
    stream.close();
    throw fromConnectError(refusalError(headers, trailers), what);
  }
  const metadata = streamMetadata(headers);

  let directionsDone = 0;
  const oneDirectionDone = () => {
    if (++directionsDone === 2) {
      signal?.removeEventListener("abort", onAbort);
      stream.close();
    }
  };
  const decoder = new FrameDecoder(String(headers["grpc-encoding"] ?? "identity"));
  const notices = new Notices();
  let readDone = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const end = (e?: Error) => {
        if (readDone) return;
        readDone = true;
        if (e) controller.error(e);
        else controller.close();
        oneDirectionDone();
      };
      stream.on("data", (chunk: Buffer) => {
        read?.();
        if (readDone) return;
        let frames;
        try {
          frames = decoder.push(chunk);
        } catch (e) {
          stream.close(0x2 /* INTERNAL_ERROR */);
          return end(failed(new ConnectError((e as Error).message, Code.Internal)));
        }
        if (deliverFrames(frames, controller, notices)) return end();
        if ((controller.desiredSize ?? 1) <= 0) stream.pause();
      });
      void answered.then(() => {
        if (signal?.aborted) return end(new Error(`${what}: closed`));
        if (trailers) {
          const status = endStatus(trailers);
          return end(status ? failed(status) : undefined);
        }
        // We closed the call ourselves (both directions done, or the reader cancelled): no status comes then.
        if (readDone) return;
        if (stream.rstCode && directionsDone < 2) {
          return end(failed(new ConnectError(resetReason(stream), Code.Unavailable)));
        }
        // Cut before its trailers: what was read may be truncated, so it must not end as if complete.
        end(failed(endStatus(undefined)));
      });
    },
    pull() {
      stream.resume();
    },
    cancel() {
      readDone = true;
      stream.close(0x8);
    },
  }, { highWaterMark: 4 });

  const closedError = () => failure ?? Object.assign(new Error(`${what}: closed`), { code: "EPIPE" });
  const writable = new WritableStream<Uint8Array>({
    // Resolves once HTTP/2 has taken the chunk, not merely queued it: the frame
    // refers to the caller's buffer, which the caller may reuse after this.
    write(chunk) {
      if (stream.closed || stream.destroyed || stream.writableEnded) return Promise.reject(closedError());
      const [head, payload] = encodeFrame(FrameType.DATA, chunk);
      stream.write(head!);
      return new Promise<void>((resolve, reject) => {
        stream.write(payload ?? new Uint8Array(0), (e) => (e ? reject(failure ?? e) : resolve()));
      });
    },
    async close() {
      if (!stream.closed && !stream.writableEnded) {
        writeFrame(stream, FrameType.GOAWAY);
        stream.end();
      }
      oneDirectionDone();
    },
    abort() {
      stream.close(0x8);
    },
  });
  return { readable, writable, metadata, notices };
}

/** RouterService.Stream's headers for a byte stream (all but `:method`): upstream's `request` metadata carries what to open. */
export function streamRequestHeaders(request: Record<string, unknown>): Record<string, string> {
  return {
    ":path": ROUTER_STREAM_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-accept-encoding": "identity,gzip",
    request: JSON.stringify(request),
  };
}

type Headers = Record<string, string | string[] | undefined>;

/** Whether the exporter's initial headers refuse the stream: a status already, our exporter's error header, or not HTTP 200. */
export function isRefusal(headers: Headers): boolean {
  return headersStatus(headers) !== undefined || headers[STREAM_ERROR_HEADER] !== undefined || Number(headers[":status"]) !== 200;
}

/** Why a refused stream was refused, once its answer is complete. */
export function refusalError(headers: Headers, trailers: Headers | undefined): ConnectError {
  return headersStatus(headers) ?? (trailers && endStatus(trailers)) ?? new ConnectError(`the exporter refused the stream (HTTP ${String(headers[":status"])})`, Code.Unknown);
}

/** The stream's metadata for the client (a resource handle, say): the exporter's headers less HTTP's and gRPC's own. */
export function streamMetadata(headers: Headers): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith(":") && !k.startsWith("grpc-") && k !== "content-type" && k !== "date" && typeof v === "string") metadata[k] = v;
  }
  return metadata;
}

/** A stream whose connection went (the exporter or the tunnel gone) before its status came. */
export const STREAM_CONNECTION_CLOSED = "the connection to the exporter closed before the stream ended";

/**
 * The peer's frames to the reader: DATA payloads enqueued, PINGs with a payload told
 * as notices (see ByteStream.notices). True at the peer's GOAWAY: its direction is done.
 */
export function deliverFrames(frames: Iterable<RouterFrame>, controller: ReadableStreamDefaultController<Uint8Array>, notices: Notices): boolean {
  for (const frame of frames) {
    if (frame.frameType === FrameType.GOAWAY) return true;
    if (frame.frameType === FrameType.DATA && frame.payload.byteLength > 0) controller.enqueue(frame.payload);
    else if (frame.frameType === FrameType.PING && frame.payload.byteLength > 0) notices.tell(new TextDecoder().decode(frame.payload));
  }
  return false;
}

/**
 * Why a stream closed without a status: its connection went (the exporter or the
 * tunnel gone), or the exporter reset this one stream.
 */
function resetReason(stream: http2.ClientHttp2Stream): string {
  const session = stream.session;
  if (!session || session.closed || session.destroyed) return STREAM_CONNECTION_CLOSED;
  return `the exporter reset the stream (HTTP/2 code ${stream.rstCode})`;
}
