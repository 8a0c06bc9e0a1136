/**
 * `j`'s connection to its session: GetReport, DriverCall and StreamingDriverCall as
 * gRPC on one node:http2 session, coded by exporter-wire.ts. A `j` command runs one
 * call and exits, and loading Connect and protobuf-es (and running their code once)
 * was a third of its time; this path loads neither unless a byte stream opens
 * (raw-stream.ts) or something fails (the errors are then made exactly as the
 * Connect path makes them, by the same code). The library and `jmp shell` keep
 * Connect's session manager (session-client.ts): they live long, and want its
 * keepalive and reconnection.
 */
import * as http2 from "node:http2";
import { decodeGrpcMessage, EnvelopeSplitter } from "../common/grpc-envelope.ts";
import { widenConnectionWindow, WINDOW_SETTINGS } from "../common/http2-window.ts";
import { decodeDriverResult, decodeReports, encodeDriverCall, WireError, type WireReport } from "../common/exporter-wire.ts";
import type { ByteStream } from "../driver/byte-stream.ts";
import type { DriverClient, Portal } from "../driver/client.ts";
import { buildClientTree } from "../driver/client-tree.ts";
import { Code, errorFromStatus } from "../driver/errors.ts";
import { AllowList, type ClientRegistry, DEFAULT_ALLOW } from "../driver/registry.ts";
import { PASSPHRASE_HEADER, type SessionAddress, sessionPeer, sessionSocket } from "./session-address.ts";

const SERVICE = "/jumpstarter.v1.ExporterService/";

/** A call cut because its connection went (the exporter or the tunnel gone). */
const CONNECTION_CLOSED = "the connection to the exporter closed before the call ended";

/** The first call on a new connection: an exporter that does not answer it in this long is not going to (as session-client.ts). */
const REPORT_TIMEOUT_MS = 15_000;

/** A call that ended with a gRPC status other than OK, or never got one. */
class CallFailure extends Error {
  constructor(readonly code: Code, message: string, readonly transport?: unknown) {
    super(message);
  }
}

/** The session connected and its client tree, for `j`. */
export async function connectForJ(
  addr: SessionAddress,
  registry: ClientRegistry,
  allow: AllowList = AllowList.fromEnv(process.env.JMP_DRIVERS_ALLOW, DEFAULT_ALLOW),
): Promise<{ root: DriverClient; close(): void }> {
  const portal = new CallsPortal(addr);
  let reports: WireReport[];
  try {
    reports = decodeReports(await portal.unary("GetReport", new Uint8Array(0), REPORT_TIMEOUT_MS));
  } catch (caught) {
    const e = caught instanceof WireError ? new CallFailure(Code.Internal, `a malformed GetReport response: ${caught.message}`) : caught;
    portal.close();
    const [{ peerError }, connectError] = await Promise.all([import("./errors.ts"), asConnectError(e)]);
    throw peerError(connectError, sessionPeer(addr));
  }
  return { root: buildClientTree(reports, portal, { registry, allow }), close: () => portal.close() };
}

/**
 * What the Connect client would have raised for `e`, for the error translations
 * written against it (client/errors.ts): loaded only on this path.
 */
async function asConnectError(e: unknown): Promise<unknown> {
  const { ConnectError } = await import("@connectrpc/connect");
  if (!(e instanceof CallFailure)) return ConnectError.from(e);
  return new ConnectError(e.message, e.code as number, undefined, undefined, e.transport);
}

class CallsPortal implements Portal {
  private readonly session: http2.ClientHttp2Session;
  private readonly headers: http2.OutgoingHttpHeaders;
  /** Why the connection failed, if it did: every call after it fails with it. */
  private failed: unknown;

  constructor(addr: SessionAddress) {
    const { baseUrl, createConnection } = sessionSocket(addr);
    // Wide windows, as the Connect path: in distributed mode this is tunnelled through the router.
    this.session = http2.connect(baseUrl, { createConnection, settings: WINDOW_SETTINGS });
    this.session.once("connect", () => widenConnectionWindow(this.session));
    this.session.on("error", (e) => (this.failed ??= e));
    this.session.on("close", () => (this.failed ??= Object.assign(new Error(CONNECTION_CLOSED), { code: "ECONNRESET" })));
    this.headers = addr.passphrase ? { [PASSPHRASE_HEADER]: addr.passphrase } : {};
  }

  close(): void {
    this.session.destroy();
  }

  /** Throws why the connection is gone, if it is (its 'close' event comes later than its state changes). */
  private checkOpen(): void {
    if (!this.failed && (this.session.closed || this.session.destroyed)) {
      this.failed = Object.assign(new Error(CONNECTION_CLOSED), { code: "ECONNRESET" });
    }
    if (this.failed) throw new CallFailure(Code.Unavailable, String((this.failed as Error).message ?? this.failed), this.failed);
  }

  /** One request on the session: `body` as one gRPC message, the response's messages as they come. */
  private request(method: string, body: Uint8Array, timeoutMs?: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    this.checkOpen();
    const stream = this.session.request({
      ":method": "POST",
      ":path": SERVICE + method,
      "content-type": "application/grpc",
      te: "trailers",
      ...(timeoutMs ? { "grpc-timeout": `${timeoutMs}m` } : {}),
      ...this.headers,
    });
    const head = new Uint8Array(5);
    new DataView(head.buffer).setUint32(1, body.byteLength);
    stream.write(head);
    stream.end(body);
    return responses(stream, timeoutMs, signal);
  }

  async unary(method: string, body: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    let only: Uint8Array | undefined;
    for await (const message of this.request(method, body, timeoutMs)) {
      if (only) throw new CallFailure(Code.Unimplemented, `${method}: more than one response message to a unary call`);
      only = message;
    }
    if (!only) throw new CallFailure(Code.Unimplemented, `${method}: no response message`);
    return only;
  }

  async call(uuid: string, method: string, args: unknown[]): Promise<unknown> {
    // Argument errors (a value that cannot travel as JSON) are thrown here, before any request.
    const body = encodeDriverCall(uuid, method, args);
    try {
      return decodeDriverResult(await this.unary("DriverCall", body));
    } catch (e) {
      throw await callError(e, method);
    }
  }

  async *streamingCall(uuid: string, method: string, args: unknown[], signal?: AbortSignal): AsyncIterable<unknown> {
    const body = encodeDriverCall(uuid, method, args);
    // Our own controller, so that leaving the loop early (break, throw) cancels the call on the exporter.
    const abort = new AbortController();
    const stop = () => abort.abort(signal?.reason);
    signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const message of this.request("StreamingDriverCall", body, undefined, abort.signal)) yield decodeDriverResult(message);
    } catch (e) {
      if (abort.signal.aborted) return;
      throw await callError(e, method);
    } finally {
      signal?.removeEventListener("abort", stop);
      abort.abort();
    }
  }

  /** A byte stream (RouterService.Stream) on a raw request of this session: see raw-stream.ts. */
  async openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream> {
    const { openRawByteStream } = await import("../driver/raw-stream.ts");
    return openRawByteStream(async (headers) => {
      this.checkOpen();
      return { stream: this.session.request({ ...headers, ...this.headers }) };
    }, request, signal);
  }
}

/** A failed DriverCall as the Connect path raises it: a typed DriverError for a status, the transport's failure translated. */
async function callError(e: unknown, method: string): Promise<unknown> {
  if (e instanceof WireError) return errorFromStatus(Code.Internal, `a malformed response: ${e.message}`, method);
  if (e instanceof CallFailure && e.transport === undefined) return errorFromStatus(e.code, e.message, method);
  const { fromConnectError } = await import("../driver/connect-errors.ts");
  return fromConnectError(await asConnectError(e), method);
}

/**
 * The gRPC messages of a response, then its status: OK ends the generator, any other
 * status (in the trailers, or in the headers of a trailers-only response) throws it.
 */
async function* responses(stream: http2.ClientHttp2Stream, timeoutMs?: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let headers: http2.IncomingHttpHeaders | undefined;
  let trailers: http2.IncomingHttpHeaders | undefined;
  let error: unknown;
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  stream.on("response", (h) => (headers = h));
  stream.on("trailers", (t) => (trailers = t));
  stream.on("data", (chunk: Uint8Array) => {
    chunks.push(chunk);
    poke();
  });
  stream.on("error", (e) => {
    error ??= e;
    poke();
  });
  stream.on("close", () => {
    ended = true;
    poke();
  });
  const timer = timeoutMs
    ? setTimeout(() => {
      error ??= new CallFailure(Code.DeadlineExceeded, "the operation timed out");
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs)
    : undefined;
  const onAbort = () => stream.close(http2.constants.NGHTTP2_CANCEL);
  signal?.addEventListener("abort", onAbort, { once: true });
  // Any length the envelope can say: Connect's client (the library's) sets no lower limit either.
  const envelopes = new EnvelopeSplitter(0xffffffff, "a response message");
  try {
    for (;;) {
      if (chunks.length) {
        const arrived = chunks.splice(0);
        // A body that is not gRPC (a proxy's error page) is not read as messages: its HTTP status says what happened.
        if (headers && !isGrpc(headers)) continue;
        for (const chunk of arrived) {
          for (const { flags, message } of envelopes.push(chunk)) {
            if (flags !== 0) throw new CallFailure(Code.Internal, "the exporter sent a compressed message, which this client did not offer to take");
            yield message;
          }
        }
        continue;
      }
      if (error) throw error instanceof CallFailure ? error : new CallFailure(Code.Unavailable, String((error as Error).message ?? error), error);
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    const status = headers && !isGrpc(headers) ? notGrpc(headers) : statusOf(trailers ?? headers);
    if (!status) {
      const session = stream.session;
      const message = !session || session.closed || session.destroyed
        ? CONNECTION_CLOSED
        : `the exporter reset the call without a status (HTTP/2 code ${stream.rstCode})`;
      const transport = Object.assign(new Error(message), { code: "ERR_HTTP2_STREAM_ERROR" });
      throw new CallFailure(Code.Unavailable, message, transport);
    }
    if (envelopes.pending > 0) throw new CallFailure(Code.Internal, "the response ends inside a message");
    if (status.code !== 0) throw new CallFailure(status.code, status.message);
  } catch (e) {
    if (e instanceof WireError) throw new CallFailure(Code.Internal, `a malformed response: ${e.message}`);
    throw e;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

function isGrpc(h: http2.IncomingHttpHeaders): boolean {
  return Number(h[":status"]) === 200 && String(h["content-type"] ?? "").startsWith("application/grpc");
}

/** A response that is not gRPC (a proxy's error page): its HTTP status as gRPC's spec maps it, or its content type. */
function notGrpc(h: http2.IncomingHttpHeaders): { code: number; message: string } {
  const status = Number(h[":status"]);
  if (status === 200) return { code: Code.Unknown, message: `not a gRPC answer (content-type ${String(h["content-type"] ?? "none")})` };
  const code = ({ 400: Code.Internal, 401: Code.Unauthenticated, 403: Code.PermissionDenied, 404: Code.Unimplemented, 429: Code.Unavailable, 502: Code.Unavailable, 503: Code.Unavailable, 504: Code.Unavailable } as Record<number, Code>)[status];
  return { code: code ?? Code.Unknown, message: `HTTP ${status}` };
}

/** grpc-status and grpc-message (percent-encoded UTF-8, as gRPC sends it) of `h`, if it has a status. */
function statusOf(h: http2.IncomingHttpHeaders | undefined): { code: number; message: string } | undefined {
  const raw = h?.["grpc-status"];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const message = decodeGrpcMessage(String(h?.["grpc-message"] ?? ""));
  return { code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : Code.Unknown, message };
}
