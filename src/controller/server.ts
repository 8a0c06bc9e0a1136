/**
 * `jmp controller run`: one TLS HTTP/2 port serving ControllerService, ClientService,
 * our AdminService and an embedded router; state in `<data-dir>/jumpstarter.db`.
 * First start makes the data dir, keys, CA, server certificate and `admin.yaml`.
 *
 * A start checks everything it can before it writes anything (the data dir is
 * writable, the database is one this jmp can use, the port is free), so a start
 * that fails changes no file. A stop ends every open call with UNAVAILABLE "the
 * controller is shutting down" before it closes the connections.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { ADMIN_CONFIG_FILE, writeAdminConfig } from "../common/client-config.ts";
import { UserError } from "../common/errors.ts";
import { rawServerStreamRoutes } from "../common/grpc-server-stream.ts";
import { rawUnaryRoutes } from "../common/grpc-unary-service.ts";
import { MAX_REQUEST_BYTES, type RawHandler, type Served, serveRoutes } from "../common/http2-server.ts";
import { getLogger } from "../common/log.ts";
import type { Keepalive } from "../common/remote-connection.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { writeFileAtomic } from "../common/yaml-file.ts";
import { AdminService } from "../gen/jumpstarter/admin/v1/admin_pb.ts";
import { ConsoleLogService } from "../gen/jumpstarter/console/v1/console_pb.ts";
import { ClientService } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { authInterceptor, type PrincipalKind, type RefusalDetails, type RefusalReason, RouterTokens, TokenAuthority } from "./auth.ts";
import type { AuditRetention } from "./audit.ts";
import { RefusalAudit } from "./audit-refusals.ts";
import { checkWritable, hasKeys, initDataDir } from "./data-dir.ts";
import { adminService } from "./services/admin-service.ts";
import { clientService } from "./services/client-service.ts";
import { controllerService } from "./services/controller-service.ts";
import { shuttingDown } from "./services/errors.ts";
import { ListenQueues } from "./services/listen-queues.ts";
import { logLeaseSteps } from "./lease-log.ts";
import { controllerMetrics } from "./metrics.ts";
import { ConsoleLogs } from "./console-logs.ts";
import { consoleService } from "./services/console-service.ts";
import type { RouterStats } from "../common/metrics.ts";
import { ControllerState } from "./state.ts";
import { DATABASE_FILE, inspectDatabase, SqliteStore } from "./store/sqlite.ts";
import { KEYS_SECRET, syncKeysSecret } from "./store/kubernetes/keys.ts";
import { LeaderElector } from "./store/kubernetes/leader.ts";
import { connectOrExplain, untilReachable } from "./store/kubernetes/open.ts";
import { KubernetesStore } from "./store/kubernetes/store.ts";
import type { Store } from "./store/store.ts";
import { within } from "../common/within.ts";
import { BroadcastSignal } from "../common/broadcast-signal.ts";

export interface ControllerOptions {
  dataDir: string;
  listen: { host: string; port: number };
  /** HOST:PORT written into configs; default: this machine's name and the bound port. */
  advertise?: string;
  /** External routers to hand out instead of the embedded one. */
  routerEndpoints?: string[];
  signal: AbortSignal;
  /** Called once listening, with the bound address (tests use port 0). */
  onListening?: (address: string) => void;
  /**
   * The embedded router's stream handler, given the controller's router tokens.
   * The CLI composes it (roles do not import each other). It answers
   * RouterService.Stream on the raw HTTP/2 request, outside Connect and its
   * interceptors: router streams carry their own short-lived router tokens. Its
   * `shutdown` ends its streams when the controller stops.
   */
  embeddedRouter?: (tokens: RouterTokens) => RawHandler;
  /** HTTP/2 PINGs to every connection (default: every 5 s, dropped after 5 s without an answer, 20 s for router streams). */
  keepalive?: Keepalive;
  /** How long a stop waits for open calls to end after telling them to (default 3 s). */
  shutdownGraceMs?: number;
  /**
   * Where the state lives: the SQLite file in the data dir (default), or upstream's
   * custom resources in a Kubernetes namespace (the data dir then holds only this
   * replica's server certificate and copies of the keys from the cluster's Secret).
   */
  backend?: { kind: "sqlite" } | { kind: "kubernetes"; kubeconfig?: string; namespace?: string };
  /** How much of the audit log is kept (default DEFAULT_AUDIT_RETENTION: 30 days, 100 000 entries). */
  auditRetention?: AuditRetention;
}

/**
 * A PING every 5 s and 5 s to answer, so a peer gone silent (a pulled cable, a
 * board powered off) is dropped within 10 s and its exporter shown offline; a
 * connection that carries a stream through the embedded router gets 20 s, as in
 * `jmp router run` (see Keepalive.bulkTimeoutMs).
 */
const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 5_000, timeoutMs: 5_000, bulkTimeoutMs: 20_000 };
const SHUTDOWN_GRACE_MS = 3_000;
/** How long a stopping Kubernetes replica waits to write the audit entries it still holds. */
const AUDIT_FLUSH_MS = 3_000;

const ADMIN_ID_FILE = "admin.id";

/** Which kinds may call which methods. */
function allowed(method: DescMethod): readonly PrincipalKind[] {
  const service = method.parent.typeName;
  if (service === ClientService.typeName) return ["Client"];
  if (service === AdminService.typeName) return ["Admin"];
  if (service === ConsoleLogService.typeName) return method.name === "Append" ? ["Exporter"] : ["Client", "Admin"];
  if (service === ControllerService.typeName) {
    switch (method.name) {
      case "Dial":
      case "GetLease":
      case "RequestLease":
      case "ListLeases":
        return ["Client"];
      case "ReleaseLease":
      case "GetServiceEndpoints":
        return ["Client", "Exporter"];
      default:
        return ["Exporter"];
    }
  }
  return [];
}

/** The admin principal: one per data dir, its token id kept beside the keys. */
function adminPrincipal(dir: string): { uid: string; tokenId: string; created: boolean } {
  const file = join(dir, ADMIN_ID_FILE);
  if (existsSync(file)) {
    const [uid, tokenId] = readFileSync(file, "utf8").trim().split(":");
    if (uid && tokenId) return { uid, tokenId, created: false };
  }
  const id = { uid: crypto.randomUUID(), tokenId: crypto.randomUUID() };
  writeFileAtomic(file, `${id.uid}:${id.tokenId}\n`);
  return { ...id, created: true };
}

/**
 * Everything a start can check without writing: the data dir, the database in it,
 * the listen address. Each problem is one line naming the path or address and what
 * to do.
 */
async function preflight(opts: ControllerOptions): Promise<void> {
  const dir = resolve(opts.dataDir);
  if (opts.backend?.kind === "kubernetes") {
    checkWritable(dir);
    return checkListenAddress(opts.listen);
  }
  checkWritable(dir, [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`]);
  const db = inspectDatabase(dir);
  // A zero-byte file is what a failed copy, a full disk or a truncating restore
  // leaves. Beside keys from an earlier start, it is a lost database: starting on it
  // would turn every client's and exporter's token into "not found" and write a new
  // schema over the evidence. With no keys it is a first start after a `touch`.
  if (db.kind === "empty" && hasKeys(dir)) {
    throw new UserError(
      `${db.path} is empty, but ${dir} holds keys from an earlier start: its clients, exporters and leases are gone. ` +
        `Restore ${DATABASE_FILE} from a backup, or delete it to start an empty lab with the same keys`,
      2,
    );
  }
  await checkListenAddress(opts.listen);
}

/** Binds the address and lets it go, so that "in use" is found before any file is written. */
async function checkListenAddress(listen: { host: string; port: number }): Promise<void> {
  if (listen.port === 0) return;
  await new Promise<void>((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(listen.port, listen.host, () => probe.close(() => done()));
  }).catch((e) => {
    throw listenError(listen, e);
  });
}

function listenError(listen: { host: string; port: number }, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  const where = `${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${listen.port}`;
  if (code === "EADDRINUSE") return new UserError(`cannot listen on ${where}: the address is in use (another controller?); stop it or choose another --listen`);
  if (code === "EACCES") return new UserError(`cannot listen on ${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); choose another --listen`);
  if (code === "EADDRNOTAVAIL") return new UserError(`cannot listen on ${where}: no such address on this machine; choose another --listen`, 2);
  return new UserError(`cannot listen on ${where}: ${(e as Error).message}`);
}

export async function runController(opts: ControllerOptions): Promise<void> {
  const log = getLogger("controller");
  if (!opts.embeddedRouter && !opts.routerEndpoints?.length) throw new Error("a controller needs a router: embedded or --router-endpoint");
  await preflight(opts);

  const advertisedHost = opts.advertise ? opts.advertise.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") : hostname();
  const hosts = [...new Set([advertisedHost, opts.listen.host].filter((h) => h && h !== "0.0.0.0" && h !== "::"))];
  const backend = opts.backend ?? { kind: "sqlite" };
  let store: Store;
  // Set once made; the Kubernetes store's watch and the election call into it.
  let state: ControllerState | undefined;
  let replicas: { isLeading: () => boolean; servesTraffic: () => boolean; stop: () => Promise<void> } | undefined;
  let where: string;
  let data: Awaited<ReturnType<typeof initDataDir>>;
  if (backend.kind === "kubernetes") {
    // Imported with the controller, not on demand: Bun 1.4.5 crashes (SIGSEGV) loading
    // the Kubernetes client as a chunk of its own in a compiled, split executable.
    const api = connectOrExplain(backend);
    const kube = await untilReachable(api, "listing the jumpstarter.dev resources", () => KubernetesStore.open(api, { auditRetention: opts.auditRetention }), opts.signal);
    store = kube;
    // After the store, whose first list finds a missing CRD or permission before anything is written.
    // The keys every replica shares come from the Secret; the server certificate is this replica's own.
    const created = await untilReachable(api, "reading the keys Secret", () =>
      syncKeysSecret(api, opts.dataDir, async () => {
        await initDataDir(opts.dataDir, { hosts });
        adminPrincipal(opts.dataDir);
      }), opts.signal);
    if (created) log.info(`created the Secret ${api.namespace}/${KEYS_SECRET} with the signing key, CA and router key`);
    data = await initDataDir(opts.dataDir, { hosts });
    where = `Kubernetes namespace ${api.namespace} (${api.connection.source})`;
    const identity = `${process.env.POD_NAME || hostname()}-${crypto.randomUUID().slice(0, 8)}`;
    const elector = new LeaderElector(api, identity, (leading) => void state?.leadershipChanged(leading).catch((e) => {
      log.error(`taking over scheduling failed: ${(e as Error).message}`);
    }));
    replicas = { isLeading: () => elector.isLeading(), servesTraffic: () => elector.servesTraffic(), stop: () => elector.stop() };
    kube.onChange((c) => state?.storeChanged(c.kind, kube.namespace, c.name));
    elector.start();
  } else {
    data = await initDataDir(opts.dataDir, { hosts });
    try {
      const sqlite = SqliteStore.open(opts.dataDir, { auditRetention: opts.auditRetention });
      store = sqlite;
      where = sqlite.path;
    } catch (e) {
      throw new UserError(`cannot open ${join(resolve(opts.dataDir), DATABASE_FILE)}: ${(e as Error).message}`);
    }
  }
  for (const f of data.created) log.info(`created ${f}`);
  const routerTokens = new RouterTokens(data.routerKey);
  const embedded = opts.embeddedRouter?.(routerTokens);
  const metrics = controllerMetrics({ router: (embedded as { stats?: RouterStats } | undefined)?.stats });
  state = new ControllerState(metrics.timed(store), { isLeading: replicas?.isLeading });
  const unwatch = [metrics.watch(state, store), logLeaseSteps(state, log)];
  await state.start();
  const authority = await TokenAuthority.fromPem(data.signingKeyPem);
  const admin = adminPrincipal(opts.dataDir);
  const queues = new ListenQueues();
  const consoleLogs = new ConsoleLogs(opts.dataDir);
  // Every open Status stream listens to it: a Set, not an AbortSignal's list (broadcast-signal.ts).
  const stopping = new BroadcastSignal();

  let endpoint = opts.advertise ?? "";
  const routers = () => (opts.routerEndpoints?.length ? opts.routerEndpoints : [endpoint]);

  const lookup = (kind: PrincipalKind, namespace: string, name: string) => {
    try {
      if (kind === "Admin") return admin;
      const p = kind === "Client" ? state.getClient(namespace, name) : state.getExporter(namespace, name);
      return { uid: p.uid, tokenId: p.tokenId };
    } catch {
      return undefined;
    }
  };
  // A call arriving while the controller stops is refused by serveRoutes, before this.
  const refusals = new RefusalAudit((entries) => state!.recordAudit(entries));
  const onRefuse = (reason: RefusalReason, about: RefusalDetails) => {
    metrics.refused(reason);
    refusals.refused({ reason, ...about });
  };
  const interceptors = [metrics.rpc, authInterceptor({ authority, lookup, allow: allowed, onRefuse })];

  const controllerImpl = controllerService({ state, routerTokens, queues, routers, shutdown: stopping });
  const clientImpl = clientService(state, authority);
  const routes = (router: ConnectRouter) => {
    router.service(ControllerService, controllerImpl);
    router.service(ClientService, clientImpl);
    router.service(ConsoleLogService, consoleService(state, consoleLogs, stopping));
    router.service(AdminService, adminService({ state, authority, get endpoint() { return endpoint; }, caPem: data.caPem }));
  };
  const raw: Record<string, RawHandler> = {
    ...(embedded ? { [ROUTER_STREAM_PATH]: embedded } : {}),
    // The unary calls each lease makes (and each exporter's Register), past Connect's
    // per-call machinery: see src/common/grpc-unary-service.ts.
    ...rawUnaryRoutes(ControllerService, controllerImpl, ["Register", "ReportStatus"], { interceptors, maxBytes: MAX_REQUEST_BYTES }),
    ...rawUnaryRoutes(ClientService, clientImpl, ["CreateLease", "GetLease", "DeleteLease"], { interceptors, maxBytes: MAX_REQUEST_BYTES }),
    // The Status stream each exporter holds and the Listen stream each lease opens: see src/common/grpc-server-stream.ts.
    ...rawServerStreamRoutes(ControllerService, controllerImpl, ["Status", "Listen"], { interceptors, maxBytes: MAX_REQUEST_BYTES }),
  };

  let served: Served;
  try {
    served = await serveRoutes(routes, { ...opts.listen, tls: { cert: data.serverCertPem, key: data.serverKeyPem } }, {
      interceptors,
      raw,
      keepalive: opts.keepalive ?? DEFAULT_KEEPALIVE,
      log,
      metrics: metrics.registry,
      // Kubernetes routes clients and exporters to ready replicas only: the leader, or all
      // while none is known to lead (see LeaderElector.servesTraffic).
      ready: replicas ? () => replicas!.servesTraffic() : undefined,
    });
  } catch (e) {
    state.stop();
    await replicas?.stop();
    store.close();
    throw listenError(opts.listen, e);
  }
  const port = Number(served.address.slice(served.address.lastIndexOf(":") + 1));
  if (!endpoint) endpoint = `${advertisedHost}:${port}`;
  else if (/:0$/.test(endpoint)) endpoint = endpoint.replace(/:0$/, `:${port}`);

  const adminFile = join(opts.dataDir, ADMIN_CONFIG_FILE);
  if (admin.created || !existsSync(adminFile)) {
    const { token } = await authority.issue({ kind: "Admin", namespace: "default", name: "admin", uid: admin.uid, tokenId: admin.tokenId });
    writeAdminConfig(adminFile, { endpoint, token, metadata: { namespace: "default", name: "admin" }, tls: { ca: Buffer.from(data.caPem).toString("base64"), insecure: false } });
    log.info(`created ${adminFile} (the admin credential: 'jmp admin' finds it there on this machine)`);
  }
  // A replica that stops serving (another took the lead) sends its clients and exporters
  // away, so that a client and its exporter meet again on the one that serves.
  let wasServing = replicas?.servesTraffic() ?? true;
  const handOver = replicas && setInterval(() => {
    const serving = replicas!.servesTraffic();
    if (!serving && wasServing) {
      log.info("another replica leads: closing this replica's connections so they reconnect to it");
      served.dropConnections?.();
    }
    wasServing = serving;
  }, 1000);
  log.info(`listening on ${served.address}; clients and exporters use ${endpoint}; state in ${where}`);
  opts.onListening?.(served.address);

  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const open = served.openCalls;
  log.info(`stopping: ending ${open} open call${open === 1 ? "" : "s"} with UNAVAILABLE`);
  // The services first: a waiting Dial then says why it ends, whichever wakes it.
  if (handOver) clearInterval(handOver);
  stopping.abort();
  await served.close({ message: shuttingDown().rawMessage, graceMs: opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS });
  for (const stop of unwatch) stop();
  state.stop();
  refusals.stop();
  // A leader gives its lease up, so another replica takes over at once rather than after 15 s.
  await replicas?.stop();
  // Audit entries still queued for the API server (Kubernetes writes them after each commit).
  await within(store.flush(), AUDIT_FLUSH_MS);
  store.close();
  log.info("stopped");
}
