/**
 * A Portal over a Connect transport: DriverCall, StreamingDriverCall and byte
 * streams over RouterService.Stream, with errors turned back into typed
 * DriverErrors. Works against our exporter and upstream's Python exporter alike.
 */
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Client, createClient, type Transport } from "@connectrpc/connect";
import { ExporterService, type GetReportResponse, type GetStatusResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { FrameType, RouterService, type StreamRequest, StreamRequestSchema } from "../gen/jumpstarter/v1/router_pb.ts";
import type { ByteStream } from "./byte-stream.ts";
import type { Portal } from "./client.ts";
import { fromConnectError } from "./errors.ts";
import { openRawByteStream, type RawStreamOpener, STREAM_ERROR_HEADER } from "./raw-stream.ts";
import { fromValue, toValue } from "./value.ts";

export { STREAM_ERROR_HEADER };

export class ConnectPortal implements Portal {
  readonly exporter: Client<typeof ExporterService>;
  readonly router: Client<typeof RouterService>;

  /**
   * `rawStreams`, when the connection can open raw HTTP/2 requests (our session
   * connections can), carries byte streams with the hand codec (raw-stream.ts);
   * without it they go through Connect.
   */
  constructor(
    transport: Transport,
    private readonly callOptions: CallOptions = {},
    private readonly rawStreams?: RawStreamOpener,
  ) {
    this.exporter = createClient(ExporterService, transport);
    this.router = createClient(RouterService, transport);
  }

  getReport(): Promise<GetReportResponse> {
    return this.exporter.getReport(create(EmptySchema), this.callOptions).catch((e) => {
      throw fromConnectError(e, "GetReport");
    });
  }

  getStatus(): Promise<GetStatusResponse> {
    return this.exporter.getStatus({}, this.callOptions).catch((e) => {
      throw fromConnectError(e, "GetStatus");
    });
  }

  async call(uuid: string, method: string, args: unknown[]): Promise<unknown> {
    try {
      const response = await this.exporter.driverCall(
        { uuid, method, args: args.map((a, i) => toValue(a, `argument ${i + 1}`)) },
        this.callOptions,
      );
      return fromValue(response.result);
    } catch (e) {
      throw fromConnectError(e, method);
    }
  }

  async *streamingCall(uuid: string, method: string, args: unknown[], signal?: AbortSignal): AsyncIterable<unknown> {
    // Our own controller, so that leaving the loop early (break, throw) cancels
    // the call on the exporter instead of leaving it running.
    const abort = new AbortController();
    const stop = () => abort.abort(signal?.reason);
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const responses = this.exporter.streamingDriverCall(
        { uuid, method, args: args.map((a, i) => toValue(a, `argument ${i + 1}`)) },
        { ...this.callOptions, signal: abort.signal },
      );
      for await (const r of responses) yield fromValue(r.result);
    } catch (e) {
      if (abort.signal.aborted) return;
      throw fromConnectError(e, method);
    } finally {
      signal?.removeEventListener("abort", stop);
      abort.abort();
    }
  }

  /**
   * Opens RouterService.Stream with upstream's `request` metadata and waits for the
   * exporter's initial headers (which carry the stream's metadata, e.g. a resource
   * handle) before returning, as upstream's client does.
   */
  async openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream> {
    if (this.rawStreams) return openRawByteStream(this.rawStreams, request, signal);
    const what = `stream ${String(request.method ?? request.kind)}`;
    const outgoing = new RequestQueue();
    const abort = new AbortController();
    signal?.addEventListener("abort", () => abort.abort(signal.reason), { once: true });
    let gotHeaders!: (m: Record<string, string>) => void;
    const headers = new Promise<Record<string, string>>((r) => (gotHeaders = r));
    const responses = this.router.stream(outgoing, {
      ...this.callOptions,
      headers: { ...(this.callOptions.headers as Record<string, string> | undefined), request: JSON.stringify(request) },
      signal: abort.signal,
      onHeader: (h) => {
        const metadata: Record<string, string> = {};
        h.forEach((value, key) => {
          if (!key.startsWith(":") && !key.startsWith("grpc-") && key !== "content-type") metadata[key] = value;
        });
        gotHeaders(metadata);
      },
    });
    const iterator = responses[Symbol.asyncIterator]();
    // Asking for the first frame starts the call; the headers come before it.
    let first: Promise<IteratorResult<{ frameType: FrameType; payload: Uint8Array }>> | undefined = iterator.next();
    const metadata = await Promise.race([
      headers,
      first.then(
        async () => (await Promise.race([headers, Promise.resolve({})])) as Record<string, string>,
        (e) => {
          throw fromConnectError(e, what);
        },
      ),
    ]);
    if (metadata[STREAM_ERROR_HEADER]) {
      // The exporter could not open the stream; its error follows in the trailers.
      try {
        await first;
      } catch (e) {
        throw fromConnectError(e, what);
      }
      throw new Error(`${what}: the exporter refused the stream`);
    }
    // Upstream exporters hold a stream's device open until the call ends, so end it
    // as soon as both directions are done rather than when the process exits.
    let directionsDone = 0;
    const oneDirectionDone = () => {
      if (++directionsDone === 2) abort.abort();
    };
    const readable = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          for (;;) {
            const next = await (first ?? iterator.next());
            first = undefined;
            if (next.done || next.value.frameType === FrameType.GOAWAY) {
              controller.close();
              return oneDirectionDone();
            }
            if (next.value.frameType === FrameType.DATA && next.value.payload.byteLength > 0) {
              return controller.enqueue(next.value.payload);
            }
          }
        } catch (e) {
          controller.error(abort.signal.aborted ? new Error(`${what}: closed`) : fromConnectError(e, what));
        }
      },
      cancel() {
        abort.abort();
      },
    }, { highWaterMark: 0 });
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => outgoing.push(create(StreamRequestSchema, { payload: chunk, frameType: FrameType.DATA })),
      close: async () => {
        await outgoing.push(create(StreamRequestSchema, { frameType: FrameType.GOAWAY }));
        outgoing.end();
        oneDirectionDone();
      },
      abort: () => {
        outgoing.end();
        abort.abort();
      },
    });
    return { readable, writable, metadata };
  }
}

/** An async iterable of outgoing frames that we push into, with backpressure. */
class RequestQueue implements AsyncIterable<StreamRequest> {
  private items: StreamRequest[] = [];
  private waiting?: () => void;
  private drained?: () => void;
  private ended = false;

  push(item: StreamRequest): Promise<void> {
    if (this.ended) return Promise.reject(Object.assign(new Error("stream closed"), { code: "EPIPE" }));
    this.items.push(item);
    this.waiting?.();
    // Hold the writer until the transport takes the frame: that is our backpressure.
    return new Promise((resolve) => {
      this.drained = resolve;
      if (this.items.length === 0) resolve();
    });
  }

  end(): void {
    this.ended = true;
    this.waiting?.();
    this.drained?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamRequest> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        if (this.items.length === 0) this.drained?.();
        yield item;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.waiting = r));
      this.waiting = undefined;
    }
  }
}
