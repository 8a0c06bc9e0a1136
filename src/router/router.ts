/**
 * RouterService.Stream as a router: the client's and the exporter's streams arrive
 * separately with the same router token; the first waits for the second, then
 * frames are copied verbatim both ways. The router never reads the bytes inside.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { formatDuration } from "../common/duration.ts";
import { getLogger, type Logger } from "../common/log.ts";
import { RouterService, type StreamRequest, type StreamResponse, StreamResponseSchema } from "../gen/jumpstarter/v1/router_pb.ts";

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

interface Side {
  requests: AsyncIterable<StreamRequest>;
  signal: AbortSignal;
}

interface Waiting {
  side: Side;
  paired: (pair: Pair) => void;
}

export function routerRoutes(opts: RouterOptions): (router: ConnectRouter) => void {
  const log = opts.log ?? getLogger("router");
  const pairTimeoutMs = opts.pairTimeoutMs ?? 30_000;
  const waiting = new Map<string, Waiting>();
  /** Subjects that already have (or had) their two streams. */
  const spent = new Set<string>();

  async function authenticate(ctx: HandlerContext): Promise<RouterClaims> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(ctx.requestHeader.get("authorization") ?? "")?.[1];
    if (!token) {
      log.warn("refused a stream without a router token");
      throw new ConnectError("missing 'authorization: Bearer <router token>' metadata", Code.Unauthenticated);
    }
    try {
      return await opts.verify(token);
    } catch (e) {
      log.warn(`refused a stream: invalid router token (${(e as Error).message})`);
      throw new ConnectError(`invalid router token: ${(e as Error).message}`, Code.Unauthenticated);
    }
  }

  function join(claims: RouterClaims, side: Side): Promise<{ pair: Pair; peer: Side }> {
    const what = `stream ${claims.subject} (lease ${claims.lease})`;
    if (spent.has(claims.subject)) {
      log.warn(`${what}: refused a third stream`);
      throw new ConnectError(`${what} already has both of its sides; a router token opens one connection (Dial again)`, Code.AlreadyExists);
    }
    const first = waiting.get(claims.subject);
    if (first) {
      waiting.delete(claims.subject);
      spent.add(claims.subject);
      const pair = new Pair(first.side, side);
      first.paired(pair);
      log.info(`${what}: paired`);
      void pair.ended.then(() => {
        log.debug(`${what}: ended`);
        const left = claims.expiresAt ? claims.expiresAt.getTime() - Date.now() : 0;
        if (left <= 0) spent.delete(claims.subject);
        else setTimeout(() => spent.delete(claims.subject), left).unref();
      });
      return Promise.resolve({ pair, peer: first.side });
    }
    log.debug(`${what}: waiting for the other side`);
    return new Promise((resolve, reject) => {
      const stop = (e: ConnectError) => {
        clearTimeout(timer);
        side.signal.removeEventListener("abort", onAbort);
        if (waiting.get(claims.subject)?.side === side) waiting.delete(claims.subject);
        reject(e);
      };
      const onAbort = () => stop(new ConnectError(`${what}: cancelled while waiting`, Code.Canceled));
      const timer = setTimeout(() => {
        log.warn(`${what}: the other side did not connect within ${formatDuration(pairTimeoutMs)}`);
        stop(new ConnectError(
          `${what}: the other side did not connect to the router within ${formatDuration(pairTimeoutMs)}`,
          Code.DeadlineExceeded,
        ));
      }, pairTimeoutMs);
      side.signal.addEventListener("abort", onAbort, { once: true });
      waiting.set(claims.subject, {
        side,
        paired: (pair) => {
          clearTimeout(timer);
          side.signal.removeEventListener("abort", onAbort);
          resolve({ pair, peer: pair.other(side) });
        },
      });
    });
  }

  return (router) => {
    router.service(RouterService, {
      stream: async function* (requests, ctx) {
        const claims = await authenticate(ctx);
        const { pair, peer } = await join(claims, { requests, signal: ctx.signal });
        yield* pair.forward(peer);
      },
    });
  };
}

/**
 * Two streams joined. Each handler sends its caller what the peer sends; a
 * handler returns only when both directions are done, because ending a gRPC
 * response ends that caller's call, and its own direction may still be sending.
 * Either call failing or being cancelled fails the other.
 */
class Pair {
  private readonly abort = new AbortController();
  private readonly aborted: Promise<never>;
  private readonly finished: Promise<void>;
  private directionsLeft = 2;
  private allDone!: () => void;
  /** Resolves when both directions are done or the pair broke. */
  readonly ended: Promise<void>;

  constructor(
    private readonly a: Side,
    private readonly b: Side,
  ) {
    this.finished = new Promise<void>((r) => (this.allDone = r));
    this.aborted = new Promise<never>((_, reject) => {
      this.abort.signal.addEventListener("abort", () => reject(this.abort.signal.reason), { once: true });
    });
    this.aborted.catch(() => {});
    this.ended = Promise.race([this.finished, this.aborted]).catch(() => {});
    for (const side of [a, b]) {
      const onAbort = () => this.fail("went away");
      if (side.signal.aborted) onAbort();
      side.signal.addEventListener("abort", onAbort, { once: true });
      void this.ended.then(() => side.signal.removeEventListener("abort", onAbort));
    }
  }

  other(side: Side): Side {
    return side === this.a ? this.b : this.a;
  }

  private fail(why: string): void {
    if (!this.abort.signal.aborted) {
      this.abort.abort(new ConnectError(`the other side of the stream ${why}`, Code.Unavailable));
    }
  }

  async *forward(from: Side): AsyncGenerator<StreamResponse> {
    const frames = from.requests[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await Promise.race([frames.next(), this.aborted]);
        if (next.done) break;
        yield create(StreamResponseSchema, { payload: next.value.payload, frameType: next.value.frameType });
      }
    } catch (e) {
      this.fail(`failed: ${e instanceof ConnectError ? e.rawMessage : String(e)}`);
      throw this.abort.signal.reason;
    }
    if (--this.directionsLeft === 0) this.allDone();
    // Still failing if the pair breaks now: our caller's data may not have arrived.
    await Promise.race([this.finished, this.aborted]);
  }
}
