/**
 * gRPC by hand on `node:http2`, for sending what no well-behaved client would:
 * any bytes as a request body, any headers, a stream left open. The answer is
 * read as a client must read it: a status in the headers (trailers-only) or the
 * trailers, else a stream reset, a connection lost, or nothing at all (a hang).
 */
import * as http2 from "node:http2";

export type Outcome =
  | { kind: "status"; code: number; message: string }
  | { kind: "http"; status: number }
  | { kind: "reset"; rstCode: number }
  | { kind: "connection"; error: string }
  | { kind: "hang" };

export interface Answer {
  outcome: Outcome;
  ms: number;
}

export function describe(o: Outcome): string {
  switch (o.kind) {
    case "status":
      return `status ${o.code}${o.message ? ` (${o.message.slice(0, 100)})` : ""}`;
    case "http":
      return `HTTP ${o.status} without a gRPC status`;
    case "reset":
      return `stream reset (RST_STREAM ${o.rstCode}) without a status`;
    case "connection":
      return `connection lost: ${o.error}`;
    case "hang":
      return "no answer (hang)";
  }
}

/** The gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload. */
export function frame(payload: Uint8Array, opts: { flags?: number; length?: number } = {}): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = opts.flags ?? 0;
  new DataView(out.buffer).setUint32(1, opts.length ?? payload.length);
  out.set(payload, 5);
  return out;
}

export interface Peer {
  /** `http://127.0.0.1:PORT` (h2c) or `https://127.0.0.1:PORT` (TLS). */
  url: string;
  /** PEM CA for TLS. */
  ca?: string;
}

export function connect(peer: Peer): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Room for what this client means to send (node's default, 10 MB, would cut its own huge messages).
    const s = http2.connect(peer.url, { ca: peer.ca, settings: { initialWindowSize: 2 ** 24 }, maxSessionMemory: 4096 });
    s.once("connect", () => {
      s.off("error", reject);
      s.on("error", () => {});
      resolve(s);
    });
    s.once("error", reject);
  });
}

/**
 * One call: POSTs `body` (chunks written in order) to `path` with gRPC headers plus
 * `headers`, ends the request unless `keepOpen`, and reads the answer for up to
 * `timeoutMs`.
 */
export function call(
  session: http2.ClientHttp2Session,
  path: string,
  body: Uint8Array[],
  opts: { headers?: Record<string, string>; timeoutMs?: number; keepOpen?: boolean } = {},
): { answer: Promise<Answer>; stream: http2.ClientHttp2Stream } {
  const t0 = performance.now();
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...opts.headers,
  });
  const answer = new Promise<Answer>((resolve) => {
    let settled = false;
    let status: number | undefined;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ outcome, ms: performance.now() - t0 });
    };
    const fromHeaders = (h: http2.IncomingHttpHeaders) => {
      const code = h["grpc-status"];
      if (code === undefined) return false;
      const raw = String(h["grpc-message"] ?? "");
      let message = raw;
      try {
        message = decodeURIComponent(raw);
      } catch {
        // Not percent-encoded after all: keep it as sent.
      }
      done({ kind: "status", code: Number(code), message });
      return true;
    };
    const timer = setTimeout(() => {
      done({ kind: "hang" });
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, opts.timeoutMs ?? 10_000);
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      fromHeaders(h);
    });
    stream.on("trailers", (h) => fromHeaders(h));
    // The body is read and dropped: only the status matters here.
    stream.on("data", () => {});
    stream.on("error", (e) => done({ kind: "connection", error: e.message }));
    stream.on("close", () => {
      if (settled) return;
      if (status !== undefined && status !== 200) done({ kind: "http", status });
      else if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) done({ kind: "reset", rstCode: stream.rstCode });
      else done({ kind: "http", status: status ?? 0 });
    });
  });
  stream.on("error", () => {});
  for (const chunk of body) stream.write(chunk);
  if (!opts.keepOpen) stream.end();
  return { answer, stream };
}
