/**
 * The controller's hold on its HTTP/2 connections: every request passes through a
 * handler made by `track`, which learns the request's session. Two things need that:
 *
 * - Keepalive. A peer that vanished without closing its TCP connection (a board
 *   powered off, a silent network) would keep its Status stream, and so its
 *   exporter online, until the kernel gave up on the connection many minutes later.
 *   Each session is sent a PING every `intervalMs`; one unanswered for `timeoutMs`
 *   drops the session, which ends its streams like a closed connection does.
 * - Shutdown. `drain` ends what is open with a status (see `onDrain`), refuses what
 *   arrives meanwhile, and waits, for a bounded time, until every call has finished,
 *   so that peers read a retryable status instead of a connection cut mid-stream.
 *
 * serveRoutes has no hook for either, so server.ts routes every path through here.
 */
import * as http2 from "node:http2";
import type { RawHandler } from "../common/http2-server.ts";
import type { Logger } from "../common/log.ts";

export interface KeepaliveOptions {
  intervalMs: number;
  timeoutMs: number;
}

export interface TrackOptions {
  /**
   * Called at drain for each of this handler's calls still open, and for each that
   * arrives while draining: end it with a status. Without it, the handler ends its
   * calls by itself (Connect services watch the shutdown signal, and an interceptor
   * refuses new calls).
   */
  onDrain?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
}

interface Call {
  req: http2.Http2ServerRequest;
  res: http2.Http2ServerResponse;
  onDrain?: TrackOptions["onDrain"];
}

/**
 * The response is complete (its status sent) but the peer may still be sending,
 * as a bidi stream's peer does until it reads the status: tell it to stop, with
 * RST_STREAM NO_ERROR as HTTP/2 allows after a complete response (RFC 9113 §8.1),
 * so the call is over at once rather than at the end of the grace.
 */
function endRequest(res: http2.Http2ServerResponse): void {
  if (!res.stream.closed && !res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

export class Connections {
  private readonly sessions = new Map<http2.Http2Session, ReturnType<typeof setInterval>>();
  private readonly calls = new Set<Call>();
  private draining = false;
  private idle: (() => void) | undefined;

  constructor(
    private readonly keepalive: KeepaliveOptions,
    private readonly log: Logger,
  ) {}

  /** The number of calls open now. */
  get open(): number {
    return this.calls.size;
  }

  track(handler: RawHandler, opts: TrackOptions = {}): RawHandler {
    return (req, res) => {
      this.watchSession(req.stream.session);
      if (this.draining && opts.onDrain) return this.end({ req, res, onDrain: opts.onDrain });
      const call: Call = { req, res, onDrain: opts.onDrain };
      this.calls.add(call);
      res.once("close", () => {
        this.calls.delete(call);
        if (this.calls.size === 0) this.idle?.();
      });
      // The stream's own 'finish' (the status is out): the response's comes only with 'close'.
      res.stream.once("finish", () => {
        if (this.draining) endRequest(res);
      });
      handler(req, res);
    };
  }

  /**
   * Ends every open call that has an `onDrain`, from now on refuses new ones through
   * it, and resolves once no call is open or `graceMs` has passed: to the number of
   * calls still open then.
   */
  async drain(graceMs: number): Promise<number> {
    this.draining = true;
    for (const call of [...this.calls]) {
      this.end(call);
      if (call.res.stream.writableFinished) endRequest(call.res);
    }
    if (this.calls.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
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

  /** A call that cannot be ended cleanly is left to the grace and the close of its connection. */
  private end(call: Call): void {
    try {
      call.onDrain?.(call.req, call.res);
    } catch (e) {
      this.log.debug(`ending ${call.req.url} at shutdown failed: ${(e as Error).message}`);
    }
  }

  /** Stops the keepalive timers; the sessions themselves are closed by the server. */
  close(): void {
    for (const timer of this.sessions.values()) clearInterval(timer);
    this.sessions.clear();
  }

  private watchSession(session: http2.Http2Session | undefined): void {
    if (!session || this.sessions.has(session) || session.destroyed) return;
    const peer = `${session.socket?.remoteAddress ?? "?"}:${session.socket?.remotePort ?? "?"}`;
    let waiting: ReturnType<typeof setTimeout> | undefined;
    const timer = setInterval(() => {
      if (waiting !== undefined || session.destroyed) return;
      waiting = setTimeout(() => {
        this.log.warn(`no answer to a keepalive PING from ${peer} within ${this.keepalive.timeoutMs} ms: closing its connection`);
        session.destroy();
      }, this.keepalive.timeoutMs);
      try {
        // An error here means the session is going anyway; its 'close' cleans up.
        session.ping((err) => {
          if (err) return;
          clearTimeout(waiting);
          waiting = undefined;
        });
      } catch {
        clearTimeout(waiting);
        waiting = undefined;
      }
    }, this.keepalive.intervalMs);
    this.sessions.set(session, timer);
    session.once("close", () => {
      clearInterval(timer);
      clearTimeout(waiting);
      this.sessions.delete(session);
    });
  }
}
