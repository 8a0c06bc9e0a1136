/**
 * An HTTP/2 server's hold on its connections and calls, for serveRoutes
 * (http2-server.ts). Two things need it:
 *
 * - Keepalive. A peer that vanished without closing its TCP connection (a board
 *   powered off, a laptop closed, a silent network) would keep its calls, and what
 *   they hold (an exporter online, a device's stream), until the kernel gave up on
 *   the connection many minutes later. Each connection is sent a PING every
 *   `intervalMs`; one unanswered for `timeoutMs` destroys the connection, which
 *   ends its calls as a closed connection does.
 * - Drain. A stop that cuts connections leaves peers with a reset mid-stream and
 *   nothing to say why. `drain` ends what is open with UNAVAILABLE and a message
 *   (Connect calls through their handler's signal and the interceptor below, raw
 *   routes through their `shutdown` hook), refuses what arrives meanwhile the same
 *   way, and waits, for a bounded time, until every call has finished.
 */
import * as http2 from "node:http2";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { BroadcastSignal, type StopSignal } from "./broadcast-signal.ts";
import { statusTrailers } from "./grpc-raw.ts";
import type { RawHandler } from "./http2-server.ts";
import type { Logger } from "./log.ts";
import type { Keepalive } from "./remote-connection.ts";

export interface DrainOptions {
  /** What open calls end with, and calls arriving meanwhile are refused with, as UNAVAILABLE: "the controller is shutting down". */
  message: string;
  /** How long open calls get to finish before their connections are destroyed. */
  graceMs: number;
}

/**
 * The response is complete (its status sent) but the peer may still be sending,
 * as a bidi stream's peer does until it reads the status: tell it to stop, with
 * RST_STREAM NO_ERROR as HTTP/2 allows after a complete response (RFC 9113 §8.1),
 * so the call is over at once rather than at the end of the grace.
 */
function stopPeer(res: http2.Http2ServerResponse): void {
  if (!res.stream.closed && !res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

export class ServerConnections {
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Connections that have carried a byte stream (RawHandler.bulk): they get keepalive.bulkTimeoutMs to answer a PING. */
  private readonly bulk = new WeakSet<http2.Http2Session>();
  private readonly calls = new Set<http2.Http2ServerResponse>();
  /** Every open stream listens to it (untilDrained, and Connect's handler contexts). */
  private readonly draining = new BroadcastSignal();
  private message: string | undefined;
  private idle: (() => void) | undefined;

  constructor(
    private readonly keepalive: Keepalive | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Connect's `shutdownSignal`: every handler's `ctx.signal` aborts, with the drain's
   * error, when the drain begins. Connect only listens to it (each handler context
   * links its own AbortController to it), which is the part a BroadcastSignal has.
   */
  get shutdownSignal(): AbortSignal {
    return this.draining as StopSignal as AbortSignal;
  }

  /** The number of calls open now. */
  get open(): number {
    return this.calls.size;
  }

  /** A new connection: destroyed at the end, and PINGed meanwhile when keepalive is on. */
  addSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    if (this.keepalive) this.ping(session, this.keepalive);
  }

  /**
   * Every request passes here. Counted until its response closes; while draining, a
   * raw route's request is refused with the drain's status (a Connect route's is
   * refused by the interceptor, in the caller's own protocol).
   */
  handle(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, handler: RawHandler, raw: boolean): void {
    this.calls.add(res);
    if (raw && handler.bulk && req.stream.session) this.bulk.add(req.stream.session);
    res.once("close", () => {
      this.calls.delete(res);
      if (this.calls.size === 0) this.idle?.();
    });
    // The stream's own 'finish' (the status is out): the response's comes only with 'close'.
    res.stream.once("finish", () => {
      if (this.message !== undefined) stopPeer(res);
    });
    if (this.message !== undefined && raw) {
      res.writeHead(200, { "content-type": "application/grpc", ...statusTrailers(Code.Unavailable, this.message) });
      res.end();
      return;
    }
    handler(req, res);
  }

  private refusal(): ConnectError {
    return new ConnectError(this.message ?? "", Code.Unavailable);
  }

  /** A call cancelled because of the drain (its handler honoured the aborted signal) says why. */
  private why(e: unknown): unknown {
    return this.message !== undefined && ConnectError.from(e).code === Code.Canceled ? this.refusal() : e;
  }

  /**
   * First of every Connect route's interceptors: refuses calls while draining, and
   * ends an open response stream at the drain whatever its handler does (a handler
   * may end its stream cleanly on an aborted signal, which would read as OK).
   */
  readonly interceptor: Interceptor = (next) => async (req) => {
    if (this.message !== undefined) throw this.refusal();
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: this.untilDrained(res.message) } : res;
    } catch (e) {
      throw this.why(e);
    }
  };

  /**
   * The messages of `messages` until the drain. Not a Promise.race with one
   * "drained" promise: each race would leave a reaction on it, and a stream lives
   * for days.
   */
  private async *untilDrained<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
    const it = messages[Symbol.asyncIterator]();
    const signal = this.draining;
    let wake: ((r: "drained") => void) | undefined;
    const onDrain = () => wake?.("drained");
    signal.addEventListener("abort", onDrain, { once: true });
    let done = false;
    try {
      for (;;) {
        if (signal.aborted) throw this.refusal();
        const r = await new Promise<IteratorResult<T> | "drained">((resolve, reject) => {
          wake = resolve;
          it.next().then(resolve, reject);
        });
        if (r === "drained") throw this.refusal();
        if (r.done) {
          done = true;
          return;
        }
        yield r.value;
      }
    } catch (e) {
      throw this.why(e);
    } finally {
      signal.removeEventListener("abort", onDrain);
      // The handler's signal is aborted too: its generator ends at its next step.
      if (!done) void it.return?.()?.catch(() => {});
    }
  }

  /**
   * Ends every open call (see the file comment), from now on refuses new ones, and
   * resolves once no call is open or `graceMs` has passed: to the number of calls
   * still open then. `rawHandlers` are told through their `shutdown` hook.
   */
  async drain(opts: DrainOptions, rawHandlers: Iterable<RawHandler>): Promise<number> {
    if (this.message === undefined) {
      this.message = opts.message;
      this.draining.abort(this.refusal());
      for (const handler of new Set(rawHandlers)) {
        try {
          handler.shutdown?.(opts.message);
        } catch (e) {
          // Left to the grace and the close of its connection.
          this.log.debug(`ending raw calls at shutdown failed: ${(e as Error).message}`);
        }
      }
      for (const res of this.calls) if (res.stream.writableFinished) stopPeer(res);
    }
    if (this.calls.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, opts.graceMs);
        this.idle = done;
        function done() {
          clearTimeout(timer);
          resolve();
        }
      });
      this.idle = undefined;
    }
    return this.calls.size;
  }

  /** Destroys every connection, which ends what is left of their calls. */
  destroy(): void {
    for (const s of this.sessions) s.destroy();
  }

  private ping(session: http2.ServerHttp2Session, keepalive: Keepalive): void {
    const peer = session.socket?.remoteAddress ? `${session.socket.remoteAddress}:${session.socket.remotePort}` : "a peer";
    let late: ReturnType<typeof setTimeout> | undefined;
    const timer = setInterval(() => {
      if (late !== undefined || session.destroyed) return;
      const timeoutMs = this.bulk.has(session) ? keepalive.bulkTimeoutMs ?? keepalive.timeoutMs : keepalive.timeoutMs;
      late = setTimeout(() => {
        this.log.warn(`no answer to a keepalive PING from ${peer} within ${timeoutMs} ms: closing its connection`);
        session.destroy();
      }, timeoutMs);
      try {
        // An error here means the session is going anyway; its 'close' cleans up.
        session.ping((err) => {
          if (err) return;
          clearTimeout(late);
          late = undefined;
        });
      } catch {
        clearTimeout(late);
        late = undefined;
      }
    }, keepalive.intervalMs);
    session.once("close", () => {
      clearInterval(timer);
      clearTimeout(late);
    });
  }
}
