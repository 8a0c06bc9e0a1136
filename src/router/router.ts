/**
 * RouterService.Stream as a router: the client's and the exporter's streams arrive
 * separately with the same router token; the first waits for the second, then
 * each side's request body becomes the other side's response body, byte for
 * byte. StreamRequest and StreamResponse share their field numbers, so a gRPC
 * message sent by one side is already a valid message for the other: the router
 * never decodes, copies or re-encodes a frame, and HTTP/2 flow control on both
 * legs is the backpressure. This is plain gRPC on the raw HTTP/2 request (not
 * Connect), so upstream's grpc clients and exporters use it as they use theirs.
 */
import type * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { formatDuration } from "../common/duration.ts";
import type { RawHandler } from "../common/http2-server.ts";
import { getLogger, type Logger } from "../common/log.ts";
import type { RouterStats } from "../common/metrics.ts";
import { refuseNonGrpc, statusTrailers } from "../common/grpc-raw.ts";

/** What a valid router token says. */
export interface RouterClaims {
  /** The stream the token is for: both sides present the same subject. */
  subject: string;
  /** For log lines. */
  lease: string;
  /** When given, the subject stays spent until then, so a used token cannot open a third stream later. */
  expiresAt?: Date;
}

export interface RouterOptions {
  /** Checks a bearer token; throws (any error) when it is not valid. */
  verify: (token: string) => Promise<RouterClaims>;
  /** How long the first side waits for the second. */
  pairTimeoutMs?: number;
  log?: Logger;
}

class StreamError extends Error {
  constructor(message: string, readonly code: Code) {
    super(message);
  }
}

/** One caller's stream: its request body in, its response body out, ended with gRPC trailers. */
class Side {
  private headersSent = false;
  private finished = false;
  /** The caller reset the stream or its connection went (not a clean end of the response). */
  readonly gone: Promise<void>;

  constructor(
    readonly req: http2.Http2ServerRequest,
    readonly res: http2.Http2ServerResponse,
  ) {
    // A reset or a dropped connection shows as 'close' below; without these
    // listeners the same failure would also be thrown as an unhandled 'error'.
    req.on("error", () => {});
    res.on("error", () => {});
    this.gone = new Promise((resolve) => {
      res.once("close", () => {
        if (!this.finished) resolve();
      });
    });
  }

  /** The peer's grpc-encoding comes along with its messages, so this side can read them. */
  sendHeaders(encoding?: string): void {
    if (this.headersSent || this.finished) return;
    this.headersSent = true;
    this.res.writeHead(200, {
      "content-type": "application/grpc",
      ...(encoding && encoding !== "identity" ? { "grpc-encoding": encoding } : {}),
    });
  }

  get encoding(): string | undefined {
    const e = this.req.headers["grpc-encoding"];
    return typeof e === "string" ? e : undefined;
  }

  /** `code` 0 is OK (Connect's Code has no member for it). */
  finish(code: Code | 0, message = ""): void {
    if (this.finished) return;
    this.sendHeaders();
    this.finished = true;
    if (this.res.stream.destroyed || this.res.stream.closed) return;
    this.res.addTrailers(statusTrailers(code, message));
    this.res.end();
  }
}

interface Waiting {
  side: Side;
  paired: () => void;
  /** Ends the wait with this error instead. */
  fail: (e: StreamError) => void;
}

/** The router's stream handler, and a way to end all of its streams with a status. */
export interface RouterHandler extends RawHandler {
  /**
   * Every paired stream ends with UNAVAILABLE and `message` on both sides, every
   * stream waiting for its other side too, and from now on new streams are refused
   * the same way, so that both ends read why instead of a cut connection.
   */
  shutdown(message: string): void;
  readonly stats: RouterStats;
}

export function routerHandler(opts: RouterOptions): RouterHandler {
  const log = opts.log ?? getLogger("router");
  const pairTimeoutMs = opts.pairTimeoutMs ?? 30_000;
  const waiting = new Map<string, Waiting>();
  /** Subjects that already have (or had) their two streams. */
  const spent = new Set<string>();
  /** Set by shutdown(): the message every stream ends with. */
  let stopped: string | undefined;
  /** Each paired stream's way to end both of its sides with a status. */
  const pairs = new Set<(e: StreamError) => void>();
  const stats: RouterStats = { paired: 0, open: 0, refused: new Map(), bytes: 0 };
  const refused = (why: string) => stats.refused.set(why, (stats.refused.get(why) ?? 0) + 1);

  async function authenticate(side: Side): Promise<RouterClaims> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(side.req.headers.authorization ?? "")?.[1];
    if (!token) {
      refused("no-token");
      log.warn("refused a stream without a router token");
      throw new StreamError("missing 'authorization: Bearer <router token>' metadata", Code.Unauthenticated);
    }
    try {
      return await opts.verify(token);
    } catch (e) {
      refused("invalid-token");
      log.warn(`refused a stream: invalid router token (${(e as Error).message})`);
      throw new StreamError(`invalid router token: ${(e as Error).message}`, Code.Unauthenticated);
    }
  }

  /**
   * The second side to arrive gets the first, and runs the pair; the first gets
   * `undefined` once the second has come (or an error if it never does).
   */
  function join(claims: RouterClaims, side: Side): Promise<Side | undefined> {
    const what = describe(claims);
    if (spent.has(claims.subject)) {
      refused("third-stream");
      log.with(leaseKeys(claims)).warn(`${what}: refused a third stream`);
      throw new StreamError(`${what} already has both of its sides; a router token opens one connection (Dial again)`, Code.AlreadyExists);
    }
    const first = waiting.get(claims.subject);
    if (first) {
      waiting.delete(claims.subject);
      spent.add(claims.subject);
      first.paired();
      return Promise.resolve(first.side);
    }
    log.debug(`${what}: waiting for the other side`);
    return new Promise((resolve, reject) => {
      let settled = false;
      const stop = (e?: StreamError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (waiting.get(claims.subject)?.side === side) waiting.delete(claims.subject);
        if (e) reject(e);
      };
      const timer = setTimeout(() => {
        refused("pair-timeout");
        log.with(leaseKeys(claims)).warn(`${what}: the other side did not connect within ${formatDuration(pairTimeoutMs)}`);
        stop(new StreamError(
          `${what}: the other side did not connect to the router within ${formatDuration(pairTimeoutMs)}`,
          Code.DeadlineExceeded,
        ));
      }, pairTimeoutMs);
      // A caller that gives up while waiting leaves nothing behind.
      void side.gone.then(() => stop());
      waiting.set(claims.subject, {
        side,
        paired: () => {
          stop();
          resolve(undefined);
        },
        fail: stop,
      });
    });
  }

  function release(claims: RouterClaims): void {
    log.debug(`${describe(claims)}: ended`);
    const left = claims.expiresAt ? claims.expiresAt.getTime() - Date.now() : 0;
    if (left <= 0) spent.delete(claims.subject);
    else setTimeout(() => spent.delete(claims.subject), left).unref();
  }

  /**
   * Something we did not foresee: every side involved ends now with a bare
   * "internal error" (our internals are not the caller's business), and the
   * original goes to our log.
   */
  function internal(cause: unknown, what: string, ...sides: Side[]): void {
    for (const s of sides) s.finish(Code.Internal, "internal error");
    log.error(`${what}: internal error (${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)})`);
  }

  /** From the moment a subject has both sides, both end together and the subject is released, whatever happens. */
  async function pair(claims: RouterClaims, a: Side, b: Side): Promise<void> {
    const what = describe(claims);
    let end!: (e: StreamError) => void;
    const ended = new Promise<StreamError>((resolve) => (end = resolve));
    pairs.add(end);
    // Paired in the same turn as a shutdown: it ends at once too.
    if (stopped !== undefined) end(new StreamError(stopped, Code.Unavailable));
    stats.paired++;
    stats.open++;
    try {
      log.with(leaseKeys(claims)).info(`${what}: paired`);
      await runPair(a, b, ended, stats);
    } catch (e) {
      internal(e, what, a, b);
    } finally {
      stats.open--;
      pairs.delete(end);
      release(claims);
    }
  }

  /** Checked at each step a stream takes before it is paired: the token check is asynchronous. */
  function refuseIfStopped(): void {
    if (stopped !== undefined) throw new StreamError(stopped, Code.Unavailable);
  }

  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (refuseNonGrpc(req, res, "the router")) return;
    const side = new Side(req, res);
    void (async () => {
      refuseIfStopped();
      const claims = await authenticate(side);
      refuseIfStopped();
      const first = await join(claims, side);
      if (first) await pair(claims, first, side);
    })().catch((e: unknown) => {
      if (e instanceof StreamError) side.finish(e.code, e.message);
      else internal(e, "a stream", side);
    });
  };
  const shutdown = (message: string) => {
    if (stopped !== undefined) return;
    stopped = message;
    const e = new StreamError(message, Code.Unavailable);
    const counts = `${pairs.size} pair${pairs.size === 1 ? "" : "s"} of streams and ${waiting.size} stream${waiting.size === 1 ? "" : "s"} waiting for a peer`;
    const any = pairs.size + waiting.size > 0;
    for (const w of [...waiting.values()]) w.fail(e);
    for (const end of pairs) end(e);
    log[any ? "info" : "debug"](`shutting down: ended ${counts} with UNAVAILABLE`);
  };
  return Object.assign(handler, { shutdown, stats, bulk: true });
}

/** The lease's keys for `--log-format json` (claims.lease is `namespace/name`). */
function leaseKeys(claims: RouterClaims): Record<string, string> {
  const slash = claims.lease.indexOf("/");
  return slash < 0 ? { lease: claims.lease, stream: claims.subject } : { namespace: claims.lease.slice(0, slash), lease: claims.lease.slice(slash + 1), stream: claims.subject };
}

function describe(claims: RouterClaims): string {
  return `stream ${claims.subject} (lease ${claims.lease})`;
}

/**
 * Copies each side's request body to the other's response until both have
 * ended, then ends both calls with OK. A handler's call must stay open after
 * its own direction ended, because the peer may still be sending to it. Either
 * caller going away ends the other's call with UNAVAILABLE; `ended` (the router
 * shutting down) ends both with its error.
 */
async function runPair(a: Side, b: Side, ended: Promise<StreamError>, stats: RouterStats): Promise<void> {
  a.sendHeaders(b.encoding);
  b.sendHeaders(a.encoding);
  const directions = [forward(a, b, stats), forward(b, a, stats)];
  const gone = Promise.race([a.gone.then(() => a), b.gone.then(() => b)]);
  const outcome = await Promise.race([Promise.all(directions).then(() => undefined), gone, ended]);
  if (outcome instanceof StreamError) {
    a.finish(outcome.code, outcome.message);
    b.finish(outcome.code, outcome.message);
    return;
  }
  if (outcome) {
    (outcome === a ? b : a).finish(Code.Unavailable, "the other side of the stream went away");
    return;
  }
  a.finish(0);
  b.finish(0);
}

/** One direction: `from`'s request body into `to`'s response, paused while `to` is full. */
function forward(from: Side, to: Side, stats: RouterStats): Promise<void> {
  return new Promise((resolve) => {
    const { req } = from;
    const { res } = to;
    const resume = () => req.resume();
    req.on("data", (chunk: Buffer) => {
      // Ended (a shutdown) while the peer still sends: a write now would reset the stream and lose its status.
      if (res.stream.destroyed || res.writableEnded) return;
      stats.bytes += chunk.length;
      if (!res.write(chunk)) {
        req.pause();
        res.once("drain", resume);
      }
    });
    // Bun emits 'end' after a reset too: an aborted request is not a finished
    // direction (its caller's 'close' reports it through `gone`).
    req.once("end", () => {
      if (!req.aborted) resolve();
    });
  });
}
