/**
 * Plain gRPC on the raw `node:http2` request, for the calls jmp answers or makes
 * outside Connect (RouterService.Stream in the router, the session and the
 * pipes): the request check, status trailers in and out, frames written.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { decodeGrpcMessage, encodeGrpcMessage } from "./grpc-envelope.ts";
import { encodeFrame } from "./router-frames.ts";

/**
 * Answers anything but a gRPC POST with 415 and a line saying why; true when it did.
 * `who` starts that line ("the router", …).
 */
export function refuseNonGrpc(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, who: string): boolean {
  if (req.method === "POST" && /^application\/grpc(\+proto)?(;|$)/.test(req.headers["content-type"] ?? "")) return false;
  res.writeHead(415, { "content-type": "text/plain" });
  res.end(`${who} speaks gRPC only (POST, content-type application/grpc)\n`);
  return true;
}

/** The trailers that end a call: OK for code 0 (Connect's Code has no member for it), else the code and its message. */
export function statusTrailers(code: Code | 0, message = ""): Record<string, string> {
  return { "grpc-status": String(code), ...(message ? { "grpc-message": encodeGrpcMessage(message) } : {}) };
}

/**
 * The error of a trailers-only answer (headers that already carry a non-OK
 * grpc-status: the call failed before it began); undefined for headers that
 * start a normal response, or say OK. `emptyMessage` stands in when the peer
 * sent no grpc-message.
 */
export function headersStatus(headers: http2.IncomingHttpHeaders, emptyMessage = ""): ConnectError | undefined {
  return headers["grpc-status"] === undefined ? undefined : endStatus(headers, emptyMessage);
}

/**
 * The status that ends a response, read as connect-es reads it: undefined for
 * OK, the peer's error as a ConnectError, and an Internal protocol error when
 * the status is missing (no trailers at all: the stream was cut, so a truncated
 * answer must not pass for a complete one) or is not a code gRPC defines.
 */
export function endStatus(trailers: http2.IncomingHttpHeaders | undefined, emptyMessage = ""): ConnectError | undefined {
  const status = trailers?.["grpc-status"];
  if (status === undefined) return new ConnectError("protocol error: missing status", Code.Internal);
  if (status === "0") return undefined;
  const code = /^\d+$/.test(String(status)) ? Number(status) : NaN;
  if (!(code in Code)) return new ConnectError(`protocol error: invalid grpc-status: ${String(status)}`, Code.Internal);
  const message = decodeGrpcMessage(String(trailers?.["grpc-message"] ?? ""));
  return new ConnectError(message || emptyMessage, code);
}

/** Writes one frame (head, then the payload as it is); false when the stream's buffer is full. */
export function writeFrame(to: { write(chunk: Uint8Array): boolean }, frameType: FrameType, payload?: Uint8Array): boolean {
  let more = true;
  for (const part of encodeFrame(frameType, payload)) more = to.write(part);
  return more;
}
