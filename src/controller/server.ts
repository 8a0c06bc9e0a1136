/**
 * `jmp controller run`: one TLS HTTP/2 port serving ControllerService, ClientService,
 * our AdminService and an embedded router; state in `<data-dir>/jumpstarter.db`.
 * First start makes the data dir, keys, CA, server certificate and `admin.yaml`.
 */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { ADMIN_CONFIG_FILE, writeAdminConfig } from "../common/client-config.ts";
import { type RawHandler, serveRoutes } from "../common/http2-server.ts";
import { getLogger } from "../common/log.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { writeFileAtomic } from "../common/yaml-file.ts";
import { AdminService } from "../gen/jumpstarter/admin/v1/admin_pb.ts";
import { ClientService } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { authInterceptor, type PrincipalKind, RouterTokens, TokenAuthority } from "./auth.ts";
import { initDataDir } from "./data-dir.ts";
import { adminService } from "./services/admin-service.ts";
import { clientService } from "./services/client-service.ts";
import { controllerService } from "./services/controller-service.ts";
import { ListenQueues } from "./services/listen-queues.ts";
import { ControllerState } from "./state.ts";
import { SqliteStore } from "./store/sqlite.ts";

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
   * interceptors: router streams carry their own short-lived router tokens.
   */
  embeddedRouter?: (tokens: RouterTokens) => RawHandler;
}

const ADMIN_ID_FILE = "admin.id";

/** Which kinds may call which methods. */
function allowed(method: DescMethod): readonly PrincipalKind[] {
  const service = method.parent.typeName;
  if (service === ClientService.typeName) return ["Client"];
  if (service === AdminService.typeName) return ["Admin"];
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

export async function runController(opts: ControllerOptions): Promise<void> {
  const log = getLogger("controller");
  const advertisedHost = opts.advertise ? opts.advertise.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") : hostname();
  const hosts = [...new Set([advertisedHost, opts.listen.host].filter((h) => h && h !== "0.0.0.0" && h !== "::"))];
  const data = await initDataDir(opts.dataDir, { hosts });
  for (const f of data.created) log.info(`created ${f}`);

  const store = SqliteStore.open(opts.dataDir);
  const state = new ControllerState(store);
  state.start();
  const authority = await TokenAuthority.fromPem(data.signingKeyPem);
  const routerTokens = new RouterTokens(data.routerKey);
  const admin = adminPrincipal(opts.dataDir);
  const queues = new ListenQueues();

  let endpoint = opts.advertise ?? "";
  if (!opts.embeddedRouter && !opts.routerEndpoints?.length) throw new Error("a controller needs a router: embedded or --router-endpoint");
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
  const interceptor = authInterceptor({ authority, lookup, allow: allowed });

  const embedded = opts.embeddedRouter?.(routerTokens);
  const routes = (router: ConnectRouter) => {
    router.service(ControllerService, controllerService({ state, routerTokens, queues, routers }));
    router.service(ClientService, clientService(state, authority));
    router.service(AdminService, adminService({ state, authority, get endpoint() { return endpoint; }, caPem: data.caPem }));
  };

  const served = await serveRoutes(routes, { ...opts.listen, tls: { cert: data.serverCertPem, key: data.serverKeyPem } }, {
    interceptors: [interceptor],
    raw: embedded ? { [ROUTER_STREAM_PATH]: embedded } : {},
  });
  const port = Number(served.address.slice(served.address.lastIndexOf(":") + 1));
  if (!endpoint) endpoint = `${advertisedHost}:${port}`;
  else if (/:0$/.test(endpoint)) endpoint = endpoint.replace(/:0$/, `:${port}`);

  const adminFile = join(opts.dataDir, ADMIN_CONFIG_FILE);
  if (admin.created || !existsSync(adminFile)) {
    const { token } = await authority.issue({ kind: "Admin", namespace: "default", name: "admin", uid: admin.uid, tokenId: admin.tokenId });
    writeAdminConfig(adminFile, { endpoint, token, metadata: { namespace: "default", name: "admin" }, tls: { ca: Buffer.from(data.caPem).toString("base64"), insecure: false } });
    log.info(`created ${adminFile} (the admin credential: 'jmp admin' finds it there on this machine)`);
  }
  log.info(`listening on ${served.address}; clients and exporters use ${endpoint}; state in ${join(opts.dataDir, "jumpstarter.db")}`);
  opts.onListening?.(served.address);

  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  log.info("stopping");
  await served.close();
  state.stop();
  store.close();
}
