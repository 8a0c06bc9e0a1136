/**
 * `j`'s connection to its session: GetReport, DriverCall and StreamingDriverCall as
 * gRPC on one HTTP/2 connection of our own (common/h2-connection.ts over a native
 * socket, session-transport.ts), coded by exporter-wire.ts. A `j` command runs one
 * call and exits: loading Connect and protobuf-es (and running their code once) was
 * a third of its time, and node:http2 with node:net a third of what was left. This
 * path loads none of them (a TCP session loads node:net and node:tls); a byte stream
 * (exporter-stream.ts, on this same connection) or a failure loads Connect, so that
 * the errors are made exactly as the Connect path makes them, by the same code. The
 * library and `jmp shell` keep Connect's session manager (session-client.ts): they
 * live long, and want its keepalive and reconnection.
 */
import { decodeGrpcMessage, EnvelopeSplitter } from "../common/grpc-envelope.ts";
import { type H2ClientConnection, H2ConnectionError, type H2Stream, type HeaderFields } from "../common/h2-connection.ts";
import { decodeDriverResult, decodeReports, encodeDriverCall, WireError, type WireReport } from "../common/exporter-wire.ts";
import type { ByteStream } from "../driver/byte-stream.ts";
import type { DriverClient, Portal } from "../driver/client.ts";
import { buildClientTree } from "../driver/client-tree.ts";
import { Code, errorFromStatus } from "../driver/errors.ts";
import { AllowList, type ClientRegistry, DEFAULT_ALLOW } from "../driver/registry.ts";
import { isTcpAddress, PASSPHRASE_HEADER, type SessionAddress, sessionPeer } from "./session-address.ts";
import { connectSession } from "./session-transport.ts";

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
  const portal = new CallsPortal(addr, await connectSession(addr));
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
  private readonly conn: H2ClientConnection;
  private readonly extra: [string, string][];

  readonly gone: Promise<Error>;

  constructor(private readonly addr: SessionAddress, conn: H2ClientConnection) {
    this.conn = conn;
    this.gone = conn.failed.then((e) => (isPlainClose(e) ? new Error("the connection to the exporter closed") : e));
    this.extra = addr.passphrase ? [[PASSPHRASE_HEADER, addr.passphrase]] : [];
  }

  close(): void {
    this.conn.close();
  }

  /** Throws why the connection is gone, if it is. */
  private checkOpen(): void {
    if (this.conn.failure) throw transportFailure(this.conn.failure);
    if (this.conn.closed) throw new CallFailure(Code.Unavailable, CONNECTION_CLOSED, connectionClosed());
  }

  /** One request on the connection: `body` as one gRPC message, the response's messages as they come. */
  private request(method: string, body: Uint8Array, timeoutMs?: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    this.checkOpen();
    const message = new Uint8Array(5 + body.byteLength);
    new DataView(message.buffer).setUint32(1, body.byteLength);
    message.set(body, 5);
    const stream = this.conn.request([
      ...this.pseudo(),
      [":path", SERVICE + method],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ...(timeoutMs ? [["grpc-timeout", `${timeoutMs}m`] as [string, string]] : []),
      ...this.extra,
    ], message);
    return responses(this.conn, stream, timeoutMs, signal);
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

  /** A byte stream (RouterService.Stream) on the same connection: see exporter-stream.ts. */
  async openStream(request: Record<string, unknown>, signal?: AbortSignal): Promise<ByteStream> {
    const { openExporterStream } = await import("./exporter-stream.ts");
    return openExporterStream((fields) => {
      this.checkOpen();
      return this.conn.request([...this.pseudo(), ...fields, ...this.extra], new Uint8Array(0), { endStream: false });
    }, this.conn, request, signal);
  }

  /** The pseudo-headers every request starts with but its path. */
  private pseudo(): [string, string][] {
    const tcp = isTcpAddress(this.addr.host);
    return [[":method", "POST"], [":scheme", tcp && !this.addr.insecure ? "https" : "http"], [":authority", tcp ? this.addr.host : "localhost"]];
  }
}

/** The connection's failure as a call's: a socket that just closed is worded as the Connect path words it. */
function transportFailure(e: Error): CallFailure {
  if (isPlainClose(e)) return new CallFailure(Code.Unavailable, CONNECTION_CLOSED, connectionClosed());
  return new CallFailure(Code.Unavailable, e.message, e);
}

/** The socket closed under the connection, with no error of its own (the peer went away). */
function isPlainClose(e: Error): boolean {
  return e instanceof H2ConnectionError && e.code === "ECONNRESET";
}

function connectionClosed(): Error {
  return Object.assign(new Error(CONNECTION_CLOSED), { code: "ECONNRESET" });
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
async function* responses(conn: H2ClientConnection, stream: H2Stream, timeoutMs?: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let error: unknown;
  let wake: (() => void) | undefined;
  stream.onChange = () => {
    wake?.();
    wake = undefined;
  };
  const timer = timeoutMs
    ? setTimeout(() => {
      error ??= new CallFailure(Code.DeadlineExceeded, "the operation timed out");
      stream.cancel();
    }, timeoutMs)
    : undefined;
  const onAbort = () => stream.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  // Any length the envelope can say: Connect's client (the library's) sets no lower limit either.
  const envelopes = new EnvelopeSplitter(0xffffffff, "a response message");
  try {
    for (;;) {
      const arrived = stream.take();
      if (arrived.length) {
        // A body that is not gRPC (a proxy's error page) is not read as messages: its HTTP status says what happened.
        if (stream.headers && !isGrpc(stream.headers)) continue;
        for (const chunk of arrived) {
          for (const { flags, message } of envelopes.push(chunk)) {
            if (flags !== 0) throw new CallFailure(Code.Internal, "the exporter sent a compressed message, which this client did not offer to take");
            yield message;
          }
        }
        continue;
      }
      if (error) throw error;
      if (stream.error) throw transportFailure(stream.error);
      if (stream.done) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    const { headers, trailers } = stream;
    const status = headers && !isGrpc(headers) ? notGrpc(headers) : statusOf(trailers ?? headers);
    if (!status) {
      const message = conn.failure || conn.closed
        ? CONNECTION_CLOSED
        : `the exporter reset the call without a status (HTTP/2 code ${stream.rstCode ?? 0})`;
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
    stream.onChange = undefined;
    stream.cancel();
  }
}

function isGrpc(h: HeaderFields): boolean {
  return Number(h[":status"]) === 200 && String(h["content-type"] ?? "").startsWith("application/grpc");
}

/** A response that is not gRPC (a proxy's error page): its HTTP status as gRPC's spec maps it, or its content type. */
function notGrpc(h: HeaderFields): { code: number; message: string } {
  const status = Number(h[":status"]);
  if (status === 200) return { code: Code.Unknown, message: `not a gRPC answer (content-type ${String(h["content-type"] ?? "none")})` };
  const code = ({ 400: Code.Internal, 401: Code.Unauthenticated, 403: Code.PermissionDenied, 404: Code.Unimplemented, 429: Code.Unavailable, 502: Code.Unavailable, 503: Code.Unavailable, 504: Code.Unavailable } as Record<number, Code>)[status];
  return { code: code ?? Code.Unknown, message: `HTTP ${status}` };
}

/** grpc-status and grpc-message (percent-encoded UTF-8, as gRPC sends it) of `h`, if it has a status. */
function statusOf(h: HeaderFields | undefined): { code: number; message: string } | undefined {
  const raw = h?.["grpc-status"];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const message = decodeGrpcMessage(String(h?.["grpc-message"] ?? ""));
  return { code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : Code.Unknown, message };
}
