/**
 * Prometheus metrics for every role, in the text exposition format, through
 * prom-client (it works inside the compiled dist/jmp). Each role makes its own
 * Registry; nothing uses prom-client's global one, so a test that runs two roles in
 * one process gets two separate sets.
 *
 * Names follow Prometheus' conventions: a `jmp_` prefix, `_total` on counters,
 * base units in the name (`_seconds`, `_bytes`).
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export { Counter, Gauge, Histogram, Registry };

/** Buckets for calls that take microseconds to seconds. */
export const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A registry with the process's CPU time, resident memory and start time. */
export function newRegistry(): Registry {
  const registry = new Registry();
  new Counter({
    name: "jmp_process_cpu_seconds_total",
    help: "User and system CPU time spent by this process, in seconds",
    registers: [registry],
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  new Gauge({
    name: "jmp_process_resident_memory_bytes",
    help: "Resident memory of this process, in bytes",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: "jmp_process_start_time_seconds",
    help: "When this process started, in seconds since the Unix epoch",
    registers: [registry],
  }).set(Math.round(Date.now() / 1000 - process.uptime()));
  return registry;
}

/** gRPC's names for the status codes (`OK`, `Unauthenticated`, ...), as grpc-go prints them. */
const CODE_NAMES: Record<number, string> = { 0: "OK" };
for (const [name, value] of Object.entries(Code)) if (typeof value === "number") CODE_NAMES[value] = name;
export const codeName = (code: number): string => CODE_NAMES[code] ?? String(code);

/**
 * Counts every call by service, method and final status code, and times unary calls
 * (a stream's length says how long its caller kept it, not how fast we answered).
 * Put it first, so that calls refused by later interceptors (auth) are counted too.
 */
export function rpcMetricsInterceptor(registry: Registry): Interceptor {
  return rpcMetrics(registry).interceptor;
}

/**
 * The RPC counters, as an interceptor for Connect's handlers and as `record` for a
 * call answered outside Connect (the exporter's raw DriverCall).
 */
export function rpcMetrics(registry: Registry): {
  interceptor: Interceptor;
  record(service: string, method: string, code: number, seconds: number): void;
} {
  const handled = new Counter({
    name: "jmp_rpc_handled_total",
    help: "RPCs completed by this server, by service, method and gRPC status code",
    labelNames: ["service", "method", "code"],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: "jmp_rpc_handling_seconds",
    help: "Time to answer a unary RPC, by service, method and gRPC status code",
    labelNames: ["service", "method", "code"],
    buckets: CALL_BUCKETS,
    registers: [registry],
  });
  const streams = new Gauge({
    name: "jmp_rpc_streams_open",
    help: "Streaming RPCs open now, by service and method",
    labelNames: ["service", "method"],
    registers: [registry],
  });
  const record = (service: string, method: string, code: number, secs: number) => {
    const labels = { service, method, code: codeName(code) };
    handled.inc(labels);
    seconds.observe(labels, secs);
  };
  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const method = req.method.name;
    const start = performance.now();
    const done = (code: number) => {
      const labels = { service, method, code: codeName(code) };
      handled.inc(labels);
      if (req.method.methodKind === "unary") seconds.observe(labels, (performance.now() - start) / 1000);
    };
    let res;
    try {
      res = await next(req);
    } catch (e) {
      done(ConnectError.from(e).code);
      throw e;
    }
    if (!res.stream) {
      done(0);
      return res;
    }
    const inner = res.message;
    streams.inc({ service, method });
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      streams.dec({ service, method });
      done(code);
    };
    return {
      ...res,
      message: (async function* () {
        try {
          yield* inner;
          finish(0);
        } catch (e) {
          finish(ConnectError.from(e).code);
          throw e;
        } finally {
          // The caller went away: Connect stops iterating without an error.
          finish(Code.Canceled);
        }
      })(),
    };
  };
  return { interceptor, record };
}

export const METRICS_PATH = "/metrics";

/**
 * Answers GET (and HEAD) /metrics from `registry`, over HTTP/1.1 or HTTP/2; anything
 * else on the path gets 405. Prometheus scrapes with HTTP/1.1 unless told otherwise.
 */
export function answerMetrics(
  registry: Registry,
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    (res as http.ServerResponse).writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    res.end(`only GET ${METRICS_PATH}\n`);
    return;
  }
  registry.metrics().then(
    (text) => {
      (res as http.ServerResponse).writeHead(200, { "content-type": registry.contentType });
      if (req.method === "HEAD") res.end();
      else res.end(text);
    },
    (e: unknown) => {
      (res as http.ServerResponse).writeHead(500, { "content-type": "text/plain" });
      res.end(`collecting metrics failed: ${(e as Error).message}\n`);
    },
  );
}

/**
 * A plain HTTP/1.1 listener for GET /metrics alone (`jmp run --metrics-listen`): an
 * exporter's own port, when it has one, is for its clients.
 */
export async function serveMetrics(registry: Registry, listen: { host: string; port: number }): Promise<{ address: string; close(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const sockets = new Set<import("node:net").Socket>();
  const server = createServer((req, res) => {
    if (req.url === METRICS_PATH) return answerMetrics(registry, req, res);
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(`not found: this port serves only GET ${METRICS_PATH}\n`);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as import("node:net").AddressInfo).port;
  return {
    address: `${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A router's running totals, kept as plain numbers (a forwarded chunk costs one add) and read at scrape time. */
export interface RouterStats {
  /** Pairs of streams made since start, and open now. */
  paired: number;
  open: number;
  /** Streams refused or given up, by why. */
  refused: Map<string, number>;
  /** Bytes forwarded, both directions together. */
  bytes: number;
}

/** The router's metrics, read from `stats` at each scrape (the embedded router's or `jmp router run`'s). */
export function registerRouterMetrics(registry: Registry, stats: RouterStats): void {
  new Counter({
    name: "jmp_router_streams_paired_total",
    help: "Router streams whose client and exporter sides both arrived",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.paired);
    },
  });
  new Gauge({
    name: "jmp_router_streams_open",
    help: "Paired router streams open now",
    registers: [registry],
    collect() {
      this.set(stats.open);
    },
  });
  new Counter({
    name: "jmp_router_streams_refused_total",
    help: "Router streams refused or given up, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of stats.refused) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: "jmp_router_bytes_total",
    help: "Bytes forwarded between the two sides of router streams",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.bytes);
    },
  });
}
