/**
 * `j`'s byte streams (a flash, a dump, a console, a port forward) on its own HTTP/2
 * connection (common/h2-connection.ts), beside its calls: the same RouterService.Stream
 * as raw-stream.ts opens on a node:http2 session for the library, frame for frame, and
 * the same words for the same failures. One connection for both matters in
 * distributed mode, where each connection to the tunnel socket is its own Dial and
 * router stream.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { H2ClientConnection, H2Stream, HeaderFields } from "../common/h2-connection.ts";
import { endStatus } from "../common/grpc-raw.ts";
import { encodeFrame, FrameDecoder } from "../common/router-frames.ts";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { Notices, type ByteStream } from "../driver/byte-stream.ts";
import { fromConnectError } from "../driver/connect-errors.ts";
import { deliverFrames, isRefusal, refusalError, STREAM_CONNECTION_CLOSED, streamMetadata, streamRequestHeaders } from "../driver/raw-stream.ts";

/**
 * Opens RouterService.Stream with upstream's `request` metadata on `conn` and waits
 * for the exporter's initial headers (the stream's metadata, e.g. a resource handle).
 * Both directions done ends the call, because upstream's exporters hold a stream's
 * device open until then. `open` makes the request, or throws why it cannot.
 */
export async function openExporterStream(
  open: (fields: [string, string][]) => H2Stream,
  conn: H2ClientConnection,
  request: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<ByteStream> {
  const what = `stream ${String(request.method ?? request.kind)}`;
  let stream: H2Stream;
  try {
    stream = open(Object.entries(streamRequestHeaders(request)));
  } catch (e) {
    throw fromConnectError(new ConnectError((e as Error).message, Code.Unavailable), what);
  }
  let failure: Error | undefined;
  const failed = (e: unknown) => (failure ??= fromConnectError(e, what));
  const resetReason = () => (stream.error || conn.failure || conn.closed ? STREAM_CONNECTION_CLOSED : `the exporter reset the stream (HTTP/2 code ${stream.rstCode})`);
  const onAbort = () => stream.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });

  // Every change of the stream (headers, data, its end) runs the step of the moment.
  let step: () => void = () => {};
  stream.onChange = () => step();
  const settled = (ready: () => boolean) => new Promise<void>((resolve) => {
    step = () => {
      if (ready()) resolve();
    };
    step();
  });

  // The headers, or the error of a stream that could not be opened.
  await settled(() => stream.headers !== undefined || stream.done);
  const headers: HeaderFields | undefined = stream.headers;
  if (!headers) {
    signal?.removeEventListener("abort", onAbort);
    throw failed((stream.trailers && endStatus(stream.trailers)) ?? new ConnectError(resetReason(), Code.Unavailable));
  }
  if (isRefusal(headers)) {
    await settled(() => {
      stream.take();
      return stream.done;
    });
    signal?.removeEventListener("abort", onAbort);
    stream.close(0);
    throw fromConnectError(refusalError(headers, stream.trailers), what);
  }
  const metadata = streamMetadata(headers);

  let directionsDone = 0;
  const oneDirectionDone = () => {
    if (++directionsDone === 2) {
      signal?.removeEventListener("abort", onAbort);
      stream.close(0);
    }
  };
  const decoder = new FrameDecoder(headers["grpc-encoding"] ?? "identity");
  const notices = new Notices();
  let readDone = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const end = (e?: Error) => {
    if (readDone) return;
    readDone = true;
    if (e) controller.error(e);
    else controller.close();
    oneDirectionDone();
  };
  /** Takes what arrived while the reader wants more: what is not taken is not credited, so the exporter waits. */
  const read = () => {
    while (!readDone && stream.hasData && (controller.desiredSize ?? 1) > 0) {
      let frames;
      try {
        frames = stream.take().flatMap((chunk) => decoder.push(chunk));
      } catch (e) {
        stream.close(0x2 /* INTERNAL_ERROR */);
        return end(failed(new ConnectError((e as Error).message, Code.Internal)));
      }
      if (deliverFrames(frames, controller, notices)) return end();
    }
    if (readDone || stream.hasData || !stream.done) return;
    if (signal?.aborted) return end(new Error(`${what}: closed`));
    if (stream.trailers) {
      const status = endStatus(stream.trailers);
      return end(status ? failed(status) : undefined);
    }
    if (stream.error || (stream.rstCode !== undefined && directionsDone < 2)) {
      return end(failed(new ConnectError(resetReason(), Code.Unavailable)));
    }
    // Cut before its trailers: what was read may be truncated, so it must not end as if complete.
    end(failed(endStatus(undefined)));
  };
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      step = read;
    },
    pull: () => read(),
    cancel() {
      readDone = true;
      stream.cancel();
    },
  }, { highWaterMark: 4 });
  read();

  const closedError = () => failure ?? Object.assign(new Error(`${what}: closed`), { code: "EPIPE" });
  let writeEnded = false;
  const writable = new WritableStream<Uint8Array>({
    // Resolves once the connection has copied the chunk out: the caller may reuse it then.
    async write(chunk) {
      if (writeEnded || stream.rstCode !== undefined || stream.error) throw closedError();
      await stream.write(...encodeFrame(FrameType.DATA, chunk)).catch(() => {
        throw closedError();
      });
    },
    async close() {
      if (!writeEnded && stream.rstCode === undefined && !stream.error) {
        writeEnded = true;
        // GOAWAY and END_STREAM out before both directions done can reset the stream.
        await stream.write(...encodeFrame(FrameType.GOAWAY)).then(() => stream.end(), () => {});
      }
      writeEnded = true;
      oneDirectionDone();
    },
    abort() {
      writeEnded = true;
      stream.cancel();
    },
  });
  return { readable, writable, metadata, notices };
}
