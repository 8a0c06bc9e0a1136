/**
 * Simulated exporters: the load generator of the controller-scale benchmark, and a
 * tool on its own (`bun bench/sim-exporters.ts --help`).
 *
 * Each one does what the controller sees of a real `jmp run` (src/exporter/agent.ts):
 * Register with a driver report, ReportStatus(AVAILABLE), then the lifelong Status
 * stream; when that says it is leased, ReportStatus(LEASE_READY) and a Listen stream
 * for the lease (its router assignments are counted, not served); when the lease is
 * gone, AVAILABLE again, which the scheduler waits for before leasing it anew. There
 * are no drivers, sessions or router connections: only controller traffic.
 *
 * Many exporters share a few HTTP/2 connections (`--per-connection`). Bun's HTTP/2
 * server announces no stream limit (SETTINGS_MAX_CONCURRENT_STREAMS 2^32-1), so this
 * is about spreading the work like many machines would, not about a limit.
 */
import * as tls from "node:tls";
import { parseArgs } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { loadAdminConfig, type AdminConfig } from "../src/common/client-config.ts";
import { tlsConnectOptions, type TlsSettings } from "../src/common/tls.ts";
import { connectAdmin } from "../src/client/admin-client.ts";
import { ExporterStatus } from "../src/gen/jumpstarter/v1/common_pb.ts";
import { ControllerService, type DriverInstanceReportSchema, type StatusResponse } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";

export interface SimCredential {
  namespace: string;
  name: string;
  token: string;
}

export interface SimOptions {
  /** The controller's HOST:PORT. */
  endpoint: string;
  tls: TlsSettings;
  /** Exporters that exist already (`createSimExporters` makes some). */
  exporters: SimCredential[];
  /** Exporters sharing one HTTP/2 connection. */
  perConnection?: number;
  /** Exporters registering at once during start-up. */
  concurrency?: number;
}

export interface SimStats {
  exporters: number;
  /** Status streams open now. */
  streaming: number;
  /** Leases the Status streams announced. */
  leases: number;
  /** Router assignments received on Listen streams (one per client Dial). */
  dials: number;
  /** Register or Status stream failures that were retried. */
  reconnects: number;
  /** ReportStatus calls that failed. */
  reportErrors: number;
}

export interface SimFleet {
  stats(): SimStats;
  /** Rejects if the controller refuses an exporter (its token), which stops them all. */
  failure: Promise<never>;
  /** Ends every stream; with `unregister`, each then reports OFFLINE and unregisters, as a real exporter shutting down. */
  stop(opts?: { unregister?: boolean }): Promise<void>;
}

const CALL_TIMEOUT_MS = 30_000;
const RETRY_MS = 1000;
/** The controller will not change its mind about these (as in agent.ts). */
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.NotFound]);

/** Creates `count` exporters `<prefix>-<i>` through the admin API, labelled sim=yes, idx=<i>, pool=<i % 10> plus `labels`. */
export async function createSimExporters(
  admin: AdminConfig,
  opts: { count: number; start?: number; prefix?: string; labels?: Record<string, string>; concurrency?: number },
): Promise<SimCredential[]> {
  const api = connectAdmin(admin);
  const namespace = admin.metadata.namespace ?? "default";
  const start = opts.start ?? 0;
  const width = Math.max(5, String(start + opts.count - 1).length);
  const out: SimCredential[] = new Array(opts.count);
  await pool(opts.count, opts.concurrency ?? 32, async (k) => {
    const i = start + k;
    // Zero-padded, so that name order (the scheduler's tie-break) is index order.
    const name = `${opts.prefix ?? "sim"}-${String(i).padStart(width, "0")}`;
    try {
      const c = await api.createExporter(namespace, name, { sim: "yes", idx: String(i), pool: String(i % 10), ...opts.labels });
      out[k] = { namespace: c.namespace, name: c.name, token: c.token };
    } catch (e) {
      throw new Error(`cannot create exporter ${name}: ${(e as Error).message} (pick another --prefix or --start)`);
    }
  });
  return out;
}

/** Brings the exporters up; resolves once every one has registered and its Status stream is open. */
export async function startSimExporters(opts: SimOptions): Promise<SimFleet> {
  const perConnection = opts.perConnection ?? 250;
  const connections: Http2SessionManager[] = [];
  const sims: SimExporter[] = [];
  const connect = tlsConnectOptions(opts.endpoint, opts.tls);
  const baseUrl = `https://${connect.host.includes(":") ? `[${connect.host}]` : connect.host}:${connect.port}`;
  let client: Client<typeof ControllerService> | undefined;
  for (const [i, cred] of opts.exporters.entries()) {
    if (i % perConnection === 0) {
      const manager = new Http2SessionManager(baseUrl, { pingIntervalMs: 20_000 }, { createConnection: () => tls.connect(connect) });
      connections.push(manager);
      client = createClient(ControllerService, createGrpcTransport({ baseUrl, sessionManager: manager, acceptCompression: [] }));
    }
    sims.push(new SimExporter(cred, client!));
  }
  // Each one has a signal of its own: with one shared by all, every call of every
  // exporter added and removed a listener on a signal holding 10 000 (Bun walks the
  // list), and the load generator spent a core on that beside the controller.
  const stopAll = () => {
    for (const s of sims) s.stop();
  };
  const runs: Promise<void>[] = [];
  let failed: { e: unknown } | undefined;
  let fail: (e: unknown) => void = () => {};
  const failure = new Promise<never>((_, reject) => (fail = reject));
  failure.catch(() => {});
  // At most `concurrency` exporters between their first Register and an open Status stream.
  await pool(sims.length, opts.concurrency ?? 64, (i) => new Promise<void>((up) => {
    const run = sims[i]!.run(up).catch((e: unknown) => {
      if (!failed) fail((failed = { e }).e);
      stopAll();
    });
    // A run that ends before it was up (stopped by another's failure) frees its slot too.
    runs.push(run.then(up));
  }));
  if (failed) {
    await Promise.all(runs);
    for (const c of connections) c.abort();
    throw failed.e;
  }
  return {
    failure,
    stats: () => {
      const sum = (f: (s: SimExporter) => number) => sims.reduce((a, s) => a + f(s), 0);
      return {
        exporters: sims.length,
        streaming: sum((s) => Number(s.streaming)),
        leases: sum((s) => s.leases),
        dials: sum((s) => s.dials),
        reconnects: sum((s) => s.reconnects),
        reportErrors: sum((s) => s.reportErrors),
      };
    },
    stop: async ({ unregister = false } = {}) => {
      stopAll();
      await Promise.all(runs);
      if (unregister) await pool(sims.length, 64, (i) => sims[i]!.unregister());
      for (const c of connections) c.abort();
    },
  };
}

/** One simulated exporter on a shared connection; its identity travels in per-call headers. */
class SimExporter {
  streaming = false;
  leases = 0;
  dials = 0;
  reconnects = 0;
  reportErrors = 0;
  private lease?: { name: string; ended: AbortController };
  private readonly headers: Record<string, string>;
  private reporting: Promise<void> = Promise.resolve();
  private latest?: ExporterStatus;
  private readonly stopping = new AbortController();
  private readonly signal = this.stopping.signal;

  constructor(
    private readonly cred: SimCredential,
    private readonly client: Client<typeof ControllerService>,
  ) {
    this.headers = {
      authorization: `Bearer ${cred.token}`,
      "jumpstarter-kind": "Exporter",
      "jumpstarter-namespace": cred.namespace,
      "jumpstarter-name": cred.name,
    };
  }

  stop(): void {
    this.stopping.abort();
  }

  /** Register and follow the Status stream until stopped; `up()` once the first stream is open. Rejects only on a refused token. */
  async run(up: () => void): Promise<void> {
    const { signal, headers } = this;
    while (!signal.aborted) {
      try {
        await this.client.register({ labels: { "jumpstarter.dev/name": this.cred.name }, reports: reportsOf(this.cred.name) }, { headers, signal, timeoutMs: CALL_TIMEOUT_MS });
        this.report(this.lease ? ExporterStatus.LEASE_READY : ExporterStatus.AVAILABLE);
        for await (const m of this.client.status({}, { headers, signal })) {
          // The controller sends the current state at once: the stream is open.
          if (!this.streaming) {
            this.streaming = true;
            up();
          }
          this.apply(m);
        }
        throw new ConnectError("the controller closed the status stream", Code.Unavailable);
      } catch (e) {
        this.streaming = false;
        if (signal.aborted) break;
        const err = ConnectError.from(e);
        if (FATAL.has(err.code)) throw new Error(`the controller refused exporter ${this.cred.name}: ${err.rawMessage}`);
        this.reconnects++;
        await new Promise((r) => setTimeout(r, RETRY_MS * (0.5 + Math.random())));
      }
    }
    this.lease?.ended.abort();
  }

  private apply(m: StatusResponse): void {
    if (m.leased && m.leaseName) {
      if (this.lease?.name === m.leaseName) return;
      this.lease?.ended.abort();
      this.lease = { name: m.leaseName, ended: new AbortController() };
      this.leases++;
      this.report(ExporterStatus.LEASE_READY);
      void this.listen(this.lease.name, this.lease.ended.signal);
    } else if (!m.leased && this.lease) {
      this.lease.ended.abort();
      this.lease = undefined;
      this.report(ExporterStatus.AVAILABLE);
    }
  }

  /** Listen, as the agent: the controller ends it with the lease, a moment before Status says so. */
  private async listen(leaseName: string, ended: AbortSignal): Promise<void> {
    const signal = AbortSignal.any([ended, this.signal]);
    try {
      for await (const _ of this.client.listen({ leaseName }, { headers: this.headers, signal })) this.dials++;
    } catch {
      // Routine at the end of a lease; a real exporter would retry while the lease lasts.
    }
  }

  /** ReportStatus in order, latest wins (as the agent's StatusReporter); failures are counted. */
  private report(status: ExporterStatus): void {
    this.latest = status;
    this.reporting = this.reporting.then(async () => {
      if (this.latest !== status || this.signal.aborted) return;
      try {
        await this.client.reportStatus({ status, message: status === ExporterStatus.AVAILABLE ? "Available for new lease" : "Ready for commands" }, { headers: this.headers, signal: this.signal, timeoutMs: CALL_TIMEOUT_MS });
      } catch {
        if (!this.signal.aborted) this.reportErrors++;
      }
    });
  }

  async unregister(): Promise<void> {
    const options = { headers: this.headers, timeoutMs: 5000 };
    try {
      await this.client.reportStatus({ status: ExporterStatus.OFFLINE, message: "Simulated exporter stopping" }, options);
      await this.client.unregister({ reason: "Simulated exporter stopping" }, options);
    } catch {
      // Best effort: the controller marks it offline a minute later anyway.
    }
  }
}

/** A small driver tree as a real exporter reports it: a composite root and one power driver. */
function reportsOf(name: string): MessageInitShape<typeof DriverInstanceReportSchema>[] {
  const root = crypto.randomUUID();
  return [
    { uuid: root, labels: { "jumpstarter.dev/client": "jumpstarter.client.CompositeClient" }, methodsDescription: {} },
    {
      uuid: crypto.randomUUID(), parentUuid: root, description: `power of ${name}`, methodsDescription: {},
      labels: { "jumpstarter.dev/client": "jumpstarter_driver_power.client.PowerClient", "jumpstarter.dev/name": "power" },
    },
  ];
}

/** Runs `task(0..n-1)` with at most `limit` at once; the first failure rejects (the rest still finish). */
async function pool(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  await Promise.all(Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n && !failure) {
      try {
        await task(next++);
      } catch (e) {
        failure ??= { e };
      }
    }
  }));
  if (failure) throw failure.e;
}

// ---- as a child process ----

/** Marks the line the tool prints once every exporter is up; `spawnSimExporters` waits for it. */
const READY = "sim-exporters ready";

/** What the tool says once it is up. */
export interface SimReady {
  exporters: number;
  /** Creating them through the admin API (0 with --tokens). */
  createSeconds: number;
  /** From the first Register until every Status stream was open. */
  upSeconds: number;
}

export interface SimProcess {
  pid: number;
  ready: SimReady;
  /** SIGTERM; resolves to the fleet's final stats. */
  stop(): Promise<SimStats>;
}

/** Runs this file as a child process (its CPU then counts apart from the controller's); resolves once it is up. */
export async function spawnSimExporters(args: string[], timeoutMs = 120_000): Promise<SimProcess> {
  const proc = Bun.spawn([process.execPath, import.meta.path, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const stderr = new Response(proc.stderr).text();
  const lines = readLines(proc.stdout);
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  let ready: SimReady;
  try {
    for (;;) {
      const { value, done } = await lines.next();
      if (done) {
        const why = late ? `was not up within ${timeoutMs / 1000} s (killed)` : `exited with ${await proc.exited} before it was up`;
        throw new Error(`sim-exporters ${args.join(" ")} ${why}: ${await stderr}`);
      }
      if (value.startsWith(READY)) {
        ready = JSON.parse(value.slice(value.indexOf("{"))) as SimReady;
        break;
      }
    }
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return {
    pid: proc.pid,
    ready,
    stop: async () => {
      proc.kill("SIGTERM");
      let last = "";
      for await (const line of lines) last = line;
      const code = await proc.exited;
      if (code !== 0) throw new Error(`sim-exporters exited with ${code}: ${await stderr}`);
      return JSON.parse(last) as SimStats;
    },
  };
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let partial = "";
  for await (const chunk of stream) {
    const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = parts.pop()!;
    yield* parts;
  }
  if (partial) yield partial;
}

const HELP = `Usage: bun bench/sim-exporters.ts --count N [options]

Simulated exporters for load on a jmp (or upstream) controller: each one registers,
keeps a Status stream open, and answers leases with LEASE_READY, Listen and then
AVAILABLE, as a real exporter would, without drivers. Runs until SIGINT or SIGTERM,
then prints its counters as one JSON line.

Where the exporters come from (one of):
  --admin-config FILE   create <prefix>-<i> through the admin API (admin.yaml in the
                        controller's data dir), labelled sim=yes, idx=<i>, pool=<i%10>
  --data-dir DIR        the same, with DIR/admin.yaml
  --tokens FILE         existing exporters: one "NAME TOKEN" (or "NS/NAME TOKEN") a line

Options:
  --count N             how many (with --tokens: the first N; default all)
  --start I             first index for created names (default 0)
  --prefix P            name prefix for created exporters (default sim)
  --label K=V           another label for created exporters (repeatable)
  --endpoint HOST:PORT  the controller (default: the admin config's)
  --ca FILE             PEM CA for the controller (default: the admin config's)
  --insecure            TLS without checking the controller's certificate
  --per-connection K    exporters per HTTP/2 connection (default 250)
  --concurrency C       exporters registering at once (default 64)
  --unregister          on stop, report OFFLINE and unregister each exporter
  -h, --help            this text
`;

function fail(message: string): never {
  console.error(`sim-exporters: ${message}\n(see --help)`);
  process.exit(2);
}

function positiveInt(flag: string, v: string | undefined, fallback?: number, min = 1): number {
  if (v === undefined) {
    if (fallback === undefined) fail(`${flag} is required`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`${flag} must be an integer of at least ${min} (got '${v}')`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        "admin-config": { type: "string" }, "data-dir": { type: "string" }, tokens: { type: "string" },
        count: { type: "string" }, start: { type: "string" }, prefix: { type: "string" }, label: { type: "string", multiple: true },
        endpoint: { type: "string" }, ca: { type: "string" }, insecure: { type: "boolean" },
        "per-connection": { type: "string" }, concurrency: { type: "string" }, unregister: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const count = values.count === undefined ? undefined : positiveInt("--count", values.count);
  const sources = (["admin-config", "data-dir", "tokens"] as const).filter((k) => values[k] !== undefined);
  if (sources.length !== 1) fail("give exactly one of --admin-config, --data-dir or --tokens");
  const labels: Record<string, string> = {};
  for (const l of values.label ?? []) {
    const m = /^([^=]+)=(.*)$/.exec(l);
    if (!m) fail(`--label must be KEY=VALUE (got '${l}')`);
    labels[m[1]!] = m[2]!;
  }
  const perConnection = positiveInt("--per-connection", values["per-connection"], 250);
  const concurrency = positiveInt("--concurrency", values.concurrency, 64);
  const trust: TlsSettings = values.insecure ? { insecure: true } : values.ca ? { ca: await Bun.file(values.ca).text().catch(() => fail(`--ca: cannot read ${values.ca}`)) } : {};

  let endpoint = values.endpoint;
  let tlsSettings = trust;
  let exporters: SimCredential[];
  let createSeconds = 0;
  if (values.tokens !== undefined) {
    if (!endpoint) fail("--tokens needs --endpoint");
    const text = await Bun.file(values.tokens).text().catch(() => fail(`--tokens: cannot read ${values.tokens}`));
    exporters = text.split("\n").filter((l) => l.trim() && !l.startsWith("#")).map((l, i) => {
      const [who, token] = l.trim().split(/\s+/);
      if (!who || !token) fail(`--tokens: line ${i + 1} is not "NAME TOKEN"`);
      const [namespace, name] = who.includes("/") ? who.split("/", 2) as [string, string] : ["default", who];
      return { namespace, name, token };
    });
    exporters = exporters.slice(0, count ?? exporters.length);
  } else {
    let admin: AdminConfig;
    try {
      admin = loadAdminConfig({ adminConfig: values["admin-config"] }, {}, values["data-dir"]);
    } catch (e) {
      fail(`${values["admin-config"] ? "--admin-config" : "--data-dir"}: ${(e as Error).message}`);
    }
    endpoint ??= admin.endpoint;
    if (!values.insecure && !values.ca) tlsSettings = admin.tls;
    admin = { ...admin, endpoint, tls: { ...admin.tls, ...tlsSettings, insecure: tlsSettings.insecure ?? false } };
    const t = performance.now();
    exporters = await createSimExporters(admin, {
      count: count ?? fail("--count is required to create exporters"),
      start: positiveInt("--start", values.start, 0, 0),
      prefix: values.prefix,
      labels,
    });
    createSeconds = (performance.now() - t) / 1000;
  }

  const t0 = performance.now();
  const fleet = await startSimExporters({ endpoint, tls: tlsSettings, exporters, perConnection, concurrency });
  const ready: SimReady = { exporters: exporters.length, createSeconds, upSeconds: (performance.now() - t0) / 1000 };
  console.log(`${READY} at ${endpoint}: ${JSON.stringify(ready)}`);
  await Promise.race([fleet.failure, new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  })]);
  await fleet.stop({ unregister: values.unregister });
  console.log(JSON.stringify(fleet.stats()));
}

if (import.meta.main) {
  main().then(() => process.exit(0), (e: Error) => {
    console.error(`sim-exporters: ${e.message}`);
    process.exit(1);
  });
}
