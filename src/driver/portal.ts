/**
 * A Portal over a session connection: DriverCall and StreamingDriverCall through
 * Connect, byte streams (RouterService.Stream) on the raw HTTP/2 request, with
 * errors turned back into typed DriverErrors. Works against our exporter and
 * upstream's Python exporter alike.
 */
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Client, createClient, type Transport } from "@connectrpc/connect";
import { ExporterService, type GetReportResponse, type GetStatusResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import type { ByteStream } from "./byte-stream.ts";
import type { Portal } from "./client.ts";
import { fromConnectError } from "./connect-errors.ts";
import { openRawByteStream, type RawStreamOpener } from "./raw-stream.ts";
import { fromValue, toValue } from "./value.ts";

export class ConnectPortal implements Portal {
  readonly exporter: Client<typeof ExporterService>;

  /** `connection`: a Connect transport and raw requests on the same HTTP/2 connection (src/client/transport.ts). */
  constructor(
    connection: { transport: Transport; rawStreams: RawStreamOpener },
    private readonly callOptions: CallOptions = {},
  ) {
    this.exporter = createClient(ExporterService, connection.transport);
    this.rawStreams = connection.rawStreams;
  }

  private readonly rawStreams: RawStreamOpener;

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

  /** A byte stream (RouterService.Stream), on the raw HTTP/2 request: see raw-stream.ts. */
  openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream> {
    return openRawByteStream(this.rawStreams, request, signal);
  }
}
