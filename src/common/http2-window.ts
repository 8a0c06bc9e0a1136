/**
 * HTTP/2 flow-control windows for connections that carry tunnelled bytes.
 *
 * HTTP/2 lets a sender have at most one window of unacknowledged bytes per
 * stream and per connection, 64 KiB each by default. A driver's byte stream in
 * distributed mode rides an HTTP/2 connection (client ↔ exporter session) that
 * is itself tunnelled through the router, so every window update crosses three
 * processes and two more HTTP/2 hops: at a few milliseconds per round trip,
 * 64 KiB windows held the stream near 10 MB/s however fast each hop was. With
 * these windows a round trip carries megabytes instead.
 *
 * The stream window is an initial SETTINGS value; the connection window only
 * grows by WINDOW_UPDATE (`setLocalWindowSize`). Bun 1.4.5 stalls a stream for
 * good when the connection window is larger than the stream window (measured:
 * 64 KiB/1 MiB and 1 MiB/4 MiB hang, equal sizes up to 16 MiB do not), so the
 * two are always the same size, and set together on both ends.
 *
 * Free of Connect: `j`'s own session connection (client/exporter-calls.ts) uses these
 * too. Connect's session manager with these windows is in session-manager.ts.
 */
import type * as http2 from "node:http2";

/**
 * Per stream and per connection alike. A peer that stops reading makes us
 * buffer at most this much for it. Measured on the 1 GiB echo through the
 * router (bench/stream.ts): 1 MiB moved 58 MB/s each way with the exporter
 * peaking 40 MiB above idle; 2 MiB 77 MB/s, +45–63 MiB; 4 MiB 65–75 MB/s,
 * +58–96 MiB. An exporter is often a small board, so the middle one.
 * 512 KiB was tried again later (bench/README.md, "Byte streams"): under heavy
 * other load it cost up to 12% less CPU per byte, but at load average 3–4 it
 * moved 74 MB/s against 101 and cost 20.0 s of CPU per GiB against 17.1.
 */
export const WINDOW_BYTES = 2 * 2 ** 20;

/** For `http2.createServer`/`connect` options: the stream window. */
export const WINDOW_SETTINGS: http2.Settings = { initialWindowSize: WINDOW_BYTES };

const widened = new WeakSet<http2.Http2Session>();

/** Grows a session's connection window, once; call it when the session is set up. */
export function widenConnectionWindow(session: http2.Http2Session): void {
  if (widened.has(session) || session.destroyed) return;
  widened.add(session);
  try {
    session.setLocalWindowSize(WINDOW_BYTES);
  } catch {
    // A session closing meanwhile keeps its default window; nothing else depends on it.
  }
}
