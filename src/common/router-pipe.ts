/**
 * One socket connection carried through a router: its bytes go out as DATA frames
 * on RouterService.Stream and the peer's frames come back as bytes. The client's
 * tunnel socket and the exporter's session socket both use it, so the router only
 * ever sees frames and never knows which side is which. The stream is a plain
 * gRPC call made on the raw HTTP/2 request with hand-encoded frames
 * (router-frames.ts): every tunnelled byte passes here, and Connect's generic
 * path copied each payload three times.
 */
import * as http2 from "node:http2";
import type * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { FrameType } from "../gen/jumpstarter/v1/router_pb.ts";
import { widenConnectionWindow, WINDOW_SETTINGS } from "./http2-window.ts";
import { endStatus, writeFrame } from "./grpc-raw.ts";
import { KEEPALIVE, type Keepalive } from "./remote-connection.ts";
import { FrameDecoder, ROUTER_STREAM_PATH } from "./router-frames.ts";
import { CONNECT_TIMEOUT_MS, tlsConnectTimed } from "./timed-connect.ts";
import { tlsConnectOptions, type TlsSettings } from "./tls.ts";

export interface PipeOptions {
  /** The router's HOST:PORT, as Dial or Listen gave it. */
  endpoint: string;
  /** The router token, sent as `authorization: Bearer`. */
  token: string;
  tls: TlsSettings;
  signal?: AbortSignal;
  keepalive?: Keepalive;
  /** For TCP and the TLS handshake together. */
  connectTimeoutMs?: number;
}

/**
 * Pumps `socket` through the router until both directions have ended: local EOF
 * becomes GOAWAY plus half-close, the peer's GOAWAY becomes `socket.end()`. An
 * error on either side destroys the socket and cancels the call, then rejects.
 * Give it a socket made with `allowHalfOpen: true`, or half-closed connections
 * lose the direction still sending.
 */
export function pipeSocketThroughRouter(socket: net.Socket, opts: PipeOptions): Promise<void> {
  let options: ReturnType<typeof tlsConnectOptions>;
  try {
    options = tlsConnectOptions(opts.endpoint, opts.tls);
  } catch (e) {
    socket.destroy();
    return Promise.reject(e);
  }
  const authority = `https://${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  const keepalive = opts.keepalive ?? KEEPALIVE;
  const session = http2.connect(authority, {
    createConnection: () => tlsConnectTimed(options, opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS),
    settings: WINDOW_SETTINGS,
  });
  session.once("connect", () => widenConnectionWindow(session));
  const call = session.request({
    ":method": "POST",
    ":path": ROUTER_STREAM_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-accept-encoding": "identity,gzip",
    authorization: `Bearer ${opts.token}`,
  });

  let failed: Error | undefined;
  let settled = false;
  let upDone = false;
  let peerDone = false;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));

  const onAbort = () => fail(new Error(`stopped: ${String(opts.signal?.reason ?? "aborted")}`));
  let pinger: ReturnType<typeof setInterval> | undefined;
  let late: ReturnType<typeof setTimeout> | undefined;
  const finish = () => {
    settled = true;
    clearInterval(pinger);
    clearTimeout(late);
    opts.signal?.removeEventListener("abort", onAbort);
    if (!call.closed) call.close(failed ? http2.constants.NGHTTP2_CANCEL : http2.constants.NGHTTP2_NO_ERROR);
    session.destroy();
    if (failed) settle.reject(failed);
    else settle.resolve();
  };
  function fail(e: Error): void {
    if (settled) return;
    failed = e;
    socket.destroy();
    finish();
  }
  const send = (frameType: FrameType, payload?: Uint8Array) => writeFrame(call, frameType, payload);
  const emptyMessage = (h: http2.IncomingHttpHeaders) => `the router ended the stream with status ${String(h["grpc-status"])}`;
  const endUp = () => {
    if (upDone || settled) return;
    upDone = true;
    send(FrameType.GOAWAY);
    call.end();
  };

  session.on("error", (e) => fail(e));
  call.on("error", (e) => fail(e));
  // From the moment the connection is up: until then the connect timeout decides.
  session.once("connect", () => {
    if (settled) return;
    pinger = setInterval(() => {
      if (late) return; // the last PING is still unanswered; its timer decides
      late = setTimeout(
        () => fail(new ConnectError(`the router at ${opts.endpoint} did not answer a PING within ${keepalive.timeoutMs / 1000} s`, Code.Unavailable)),
        keepalive.timeoutMs,
      );
      session.ping((err) => {
        clearTimeout(late);
        late = undefined;
        if (err && !settled) fail(err);
      });
    }, keepalive.intervalMs);
  });

  // Socket → router. Pausing the socket while the call's buffer is full is the
  // backpressure: a slow router slows the local writer, nothing piles up here.
  socket.on("data", (chunk: Buffer) => {
    if (upDone || settled) return; // the call is over; nobody is left to hear it
    if (!send(FrameType.DATA, chunk) && !socket.isPaused()) {
      socket.pause();
      call.once("drain", () => socket.resume());
    }
  });
  socket.on("end", endUp);
  socket.on("error", (e) => fail(e));
  // A socket its owner destroyed without an EOF has nothing more to send either.
  socket.on("close", endUp);

  // Router → socket. The call stays open after the peer's GOAWAY: our own
  // direction may still be sending, and ending the call would cancel it.
  let decoder = new FrameDecoder();
  /** The status that ended the call, once known (headers of a trailers-only answer, or the trailers). */
  let ending: http2.IncomingHttpHeaders | undefined;
  call.on("response", (headers) => {
    const code = headers[":status"];
    if (code !== 200) return fail(new ConnectError(`the router at ${opts.endpoint} answered HTTP ${code}`, Code.Unavailable));
    if (headers["grpc-status"] !== undefined) ending = headers; // a trailers-only answer: the call failed before it began
    decoder = new FrameDecoder(String(headers["grpc-encoding"] ?? "identity"));
  });
  call.on("trailers", (trailers) => (ending = trailers));
  call.on("data", (chunk: Buffer) => {
    if (settled) return;
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      return fail(new ConnectError(`the router at ${opts.endpoint} sent a bad frame: ${(e as Error).message}`, Code.Internal));
    }
    for (const frame of frames) {
      if (peerDone || socket.writableEnded || socket.destroyed) continue;
      if (frame.frameType === FrameType.GOAWAY) {
        peerDone = true;
        socket.end();
      } else if (frame.frameType === FrameType.DATA && frame.payload.byteLength > 0 && !socket.write(frame.payload) && !call.isPaused()) {
        call.pause();
        socket.once("drain", () => call.resume());
      }
    }
  });
  call.on("end", () => {
    if (settled) return;
    // No trailers means the stream was cut: what came through may be truncated.
    const status = endStatus(ending, ending ? emptyMessage(ending) : undefined);
    if (status) return fail(status);
    if (!peerDone) socket.end();
    if (upDone) return finish();
    // The router ended the call while we still had a direction open (upstream's
    // router ends both sides when one ends): nothing more can be delivered.
    upDone = true;
    socket.destroySoon();
    finish();
  });
  call.on("close", () => {
    if (settled) return;
    fail((ending && endStatus(ending, emptyMessage(ending))) ?? new ConnectError(`the stream through the router at ${opts.endpoint} was reset (HTTP/2 code ${call.rstCode})`, Code.Unavailable));
  });

  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });
  return done;
}
