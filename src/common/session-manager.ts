/**
 * Connect's HTTP/2 session manager, with an abort() that leaves no timer behind.
 *
 * Connect's state for a ready connection re-arms its 15-minute idle timer when the
 * connection's last stream closes. abort() leaves that state, clearing its timers,
 * and then Bun closes the streams that were open, so the timer came back for every
 * connection closed with a call on it and held the connection's objects for 15
 * minutes: a script leasing board after board grew by ~100 objects and tens of KiB
 * a lease. Here the state is left once more when those streams have closed, which
 * clears the timer again.
 */
import type * as http2 from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { widenConnectionWindow, WINDOW_SETTINGS } from "./http2-window.ts";

/** The part of connect-node's internal connection state that abort() below uses. */
interface ConnectState {
  t: string;
  onExitState?(): void;
}

export class SessionManager extends Http2SessionManager {
  /** Calls whose stream has not closed yet. */
  private readonly open = new Set<http2.ClientHttp2Stream>();
  /** The state of the connection abort() closed, while its streams are still closing. */
  private closing: ConnectState | undefined;

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    this.open.add(stream);
    // Runs after Connect's own listener (added in super.request), which re-arms the timer.
    stream.once("close", () => {
      this.open.delete(stream);
      if (this.open.size > 0 || !this.closing) return;
      this.closing.onExitState?.();
      this.closing = undefined;
    });
    return stream;
  }

  override abort(reason?: Error): void {
    const state = (this as unknown as { s: ConnectState }).s;
    super.abort(reason);
    if (state.t === "ready" && this.open.size > 0) this.closing = state;
  }
}

/**
 * Connect's session manager with wide windows: the stream window in the
 * session's settings, the connection window widened when its first stream opens
 * (the manager makes its sessions internally, so that is where we first see one).
 */
export class WideWindowSessionManager extends SessionManager {
  constructor(
    url: string,
    pingOptions?: ConstructorParameters<typeof Http2SessionManager>[1],
    options: http2.ClientSessionOptions | http2.SecureClientSessionOptions = {},
  ) {
    super(url, pingOptions, { ...options, settings: { ...options.settings, ...WINDOW_SETTINGS } });
  }

  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    if (stream.session) widenConnectionWindow(stream.session);
    return stream;
  }
}
