/**
 * One socket connection carried through a router: its bytes go out as DATA frames
 * on RouterService.Stream and the peer's frames come back as bytes. The client's
 * tunnel socket and the exporter's session socket both use it, so the router only
 * ever sees frames and never knows which side is which.
 */
import type * as net from "node:net";
import * as tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { FrameType, RouterService, type StreamRequest, StreamRequestSchema } from "../gen/jumpstarter/v1/router_pb.ts";
import { tlsConnectOptions, type TlsSettings } from "./tls.ts";

export interface RemoteConnection {
  transport: Transport;
  /** Closes the HTTP/2 connection and every call still on it. */
  close(): void;
}

/**
 * gRPC over TLS (HTTP/2, ALPN h2) to a controller or router. Pings every 20 s as
 * upstream's clients do, so a vanished peer fails the open calls instead of
 * hanging them. No compression: tunnelled bytes are often compressed already,
 * and gzip on every frame costs a small exporter more than it saves.
 */
export function connectRemote(endpoint: string, trust: TlsSettings, interceptors: Interceptor[] = []): RemoteConnection {
  const options = tlsConnectOptions(endpoint, trust);
  const baseUrl = `https://${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  const manager = new Http2SessionManager(
    baseUrl,
    { pingIntervalMs: 20_000, pingTimeoutMs: 15_000 },
    { createConnection: () => tls.connect(options) },
  );
  return {
    transport: createGrpcTransport({ baseUrl, sessionManager: manager, acceptCompression: [], interceptors }),
    close: () => manager.abort(),
  };
}

export interface PipeOptions {
  /** The router's HOST:PORT, as Dial or Listen gave it. */
  endpoint: string;
  /** The router token, sent as `authorization: Bearer`. */
  token: string;
  tls: TlsSettings;
  signal?: AbortSignal;
}

/**
 * Pumps `socket` through the router until both directions have ended: local EOF
 * becomes GOAWAY plus half-close, the peer's GOAWAY becomes `socket.end()`. An
 * error on either side destroys the socket and cancels the call, then rejects.
 * Give it a socket made with `allowHalfOpen: true`, or half-closed connections
 * lose the direction still sending.
 */
export function pipeSocketThroughRouter(socket: net.Socket, opts: PipeOptions): Promise<void> {
  let remote: RemoteConnection;
  try {
    remote = connectRemote(opts.endpoint, opts.tls);
  } catch (e) {
    socket.destroy();
    return Promise.reject(e);
  }
  const abort = new AbortController();
  const outgoing = new FrameQueue();
  let failed: Error | undefined;
  let settled = false;
  let upDone = false;
  let callOver = false;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));

  const onAbort = () => fail(new Error(`stopped: ${String(opts.signal?.reason ?? "aborted")}`));
  const finish = () => {
    settled = true;
    opts.signal?.removeEventListener("abort", onAbort);
    remote.close();
    if (failed) settle.reject(failed);
    else settle.resolve();
  };
  function fail(e: Error): void {
    if (settled) return;
    failed = e;
    outgoing.end();
    abort.abort(e);
    socket.destroy();
    finish();
  }
  const endUp = () => {
    if (upDone) return;
    upDone = true;
    outgoing.push(create(StreamRequestSchema, { frameType: FrameType.GOAWAY })).catch(() => {});
    outgoing.end();
    if (callOver && !settled) finish();
  };

  // Socket → router. Pausing the socket until the transport takes each frame is
  // the backpressure: a slow router slows the local writer, nothing piles up here.
  socket.on("data", (chunk: Buffer) => {
    if (upDone) return; // the call is over; nobody is left to hear it
    socket.pause();
    outgoing.push(create(StreamRequestSchema, { frameType: FrameType.DATA, payload: chunk })).then(
      () => socket.resume(),
      () => {},
    );
  });
  socket.on("end", endUp);
  socket.on("error", (e) => fail(e));
  // A socket its owner destroyed without an EOF has nothing more to send either.
  socket.on("close", endUp);

  // Router → socket. The call stays open after the peer's GOAWAY: our own
  // direction may still be sending, and leaving the loop would cancel it.
  const down = async () => {
    const responses = createClient(RouterService, remote.transport).stream(outgoing, {
      signal: abort.signal,
      headers: { authorization: `Bearer ${opts.token}` },
    });
    let peerDone = false;
    for await (const frame of responses) {
      if (peerDone || socket.writableEnded || socket.destroyed) continue;
      if (frame.frameType === FrameType.GOAWAY) {
        peerDone = true;
        socket.end();
      } else if (frame.frameType === FrameType.DATA && frame.payload.byteLength > 0 && !socket.write(frame.payload)) {
        await drained(socket);
      }
    }
    if (!peerDone) socket.end();
  };
  down().then(
    () => {
      if (settled) return;
      callOver = true;
      if (upDone) return finish();
      // The router ended the call while we still had a direction open (upstream's
      // router ends both sides when one ends): nothing more can be delivered.
      upDone = true;
      outgoing.end();
      socket.destroySoon();
      finish();
    },
    (e: Error) => fail(e),
  );

  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });
  return done;
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const go = () => {
      socket.off("drain", go);
      socket.off("close", go);
      resolve();
    };
    socket.on("drain", go);
    socket.on("close", go);
  });
}

/** Outgoing frames as an async iterable we push into; a push resolves once the transport took it. */
class FrameQueue implements AsyncIterable<StreamRequest> {
  private items: { frame: StreamRequest; taken: () => void }[] = [];
  private wake?: () => void;
  private ended = false;

  push(frame: StreamRequest): Promise<void> {
    if (this.ended) return Promise.reject(new Error("stream closed"));
    return new Promise((taken) => {
      this.items.push({ frame, taken });
      this.wake?.();
    });
  }

  /** No more frames: those not yet taken are still sent; later pushes are refused. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamRequest> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield item.frame;
        item.taken();
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}
