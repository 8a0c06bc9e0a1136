/**
 * A Kubernetes API server double on real HTTPS, for the Kubernetes store's tests: no
 * kube-apiserver can run on these machines, so this serves the part of the API the
 * controller uses, reached through a real kubeconfig by the real `@kubernetes/client-node`.
 *
 *   const api = await startKubeApiServer();            // CRDs from packaging/kubernetes/crds
 *   api.writeKubeconfig(file, { namespace: "lab" });   // bearer token, CA, context namespace
 *   ... run the code under test with KUBECONFIG=file ...
 *   api.objects("leases.jumpstarter.dev", "lab");      // what it stored
 *   await api.stop(); await api.start();               // the API server down, then back, same port and state
 *   api.setRules(api.token, rules);                    // RBAC: take a permission away → 403
 *   api.audit();                                       // who asked for what, and the answer's code
 *   await api.close();
 *
 * Options: `port` (0 = any), `crds` (YAML texts to install; default every file in
 * packaging/kubernetes/crds), `users` (tokens with a user name and RBAC rules; default one
 * admin), `watchHistory` (changes kept for watch resume; fewer forces 410 Gone sooner),
 * `bookmarkIntervalMs`, `latencyMs`.
 *
 * Served: discovery (/api, /apis, /apis/GROUP/VERSION, /version); namespaced custom
 * resources from installed CRDs; coordination.k8s.io/v1 leases; v1 secrets and configmaps;
 * apiextensions.k8s.io/v1 customresourcedefinitions (so a test can install or remove a
 * CRD). Verbs get, list, watch, create, update, patch (merge and JSON patch), delete, and
 * /status where a CRD declares it. Not served: validation against the CRD schema, server-side
 * apply, list pagination (a server may ignore `limit`, API Concepts "Retrieving large results
 * sets in chunks"), namespaces as objects (any namespace name is accepted).
 *
 * Standalone: `bun test/kube-apiserver/main.ts --port N --kubeconfig FILE [--namespace NS]`.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { createCA, createServerCert } from "../../src/common/pki.ts";
import { parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { ApiError, forbidden, methodNotAllowed, noResource, success, unauthorized } from "./status.ts";
import { ObjectStore, resourceKey, type Obj, type ResourceDef } from "./store.ts";

export const CRD_DIR = join(import.meta.dir, "../../packaging/kubernetes/crds");

/** An RBAC PolicyRule (rbac.authorization.k8s.io/v1), as a Role carries it. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface User {
  token: string;
  /** The name RBAC messages carry, e.g. system:serviceaccount:lab:jumpstarter-controller. */
  name: string;
  /** "*" allows everything (cluster-admin). */
  rules: PolicyRule[] | "*";
  /**
   * Rules granted by a RoleBinding hold in its namespace only; absent, they hold everywhere
   * (a ClusterRoleBinding). Using RBAC Authorization, "RoleBinding and ClusterRoleBinding".
   */
  namespace?: string;
}

export interface AuditEntry {
  user: string;
  verb: string;
  group: string;
  /** The plural, with `/status` for the subresource. */
  resource: string;
  namespace?: string;
  name?: string;
  code: number;
}

export interface KubeApiServerOptions {
  port?: number;
  host?: string;
  crds?: string[];
  users?: User[];
  watchHistory?: number;
  bookmarkIntervalMs?: number;
  latencyMs?: number;
}

export interface KubeApiServer {
  url: string;
  port: number;
  caPem: string;
  /** The first user's token (the admin's by default). */
  token: string;
  writeKubeconfig(path: string, opts: { namespace: string; token?: string }): void;
  /** Closes the listener and every connection (watches end); state stays. */
  stop(): Promise<void>;
  /** Listens again on the same port with the same certificate and state. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** Stored objects of `plural.group` (`secrets` for the core group), optionally in one namespace. */
  objects(resource: string, namespace?: string): Obj[];
  /** One object's changes the watch history still holds (see `watchHistory`), oldest first: to tell how it got where it is. */
  changes(resource: string, namespace: string | undefined, name: string): { type: string; rv: number; at: number; object: Obj }[];
  setRules(token: string, rules: PolicyRule[] | "*"): void;
  setLatency(ms: number): void;
  setWatchHistory(n: number): void;
  /** Installs CRDs from YAML text, as `kubectl apply` would create them. */
  installCrds(yamlText: string): void;
  /** Ends every open watch as the real server does at a watch's timeout; clients resume from their last resourceVersion. */
  endWatches(): void;
  /** The resource requests so far (the newest 10,000), as an audit log records them: who did what, and the answer's code. */
  audit(): AuditEntry[];
  /** Requests that arrived, watches open now, and watches answered 410 Expired so far. */
  stats(): { requests: number; watches: number; expired: number };
  /** The current resourceVersion, for tests that reason about watch resume. */
  resourceVersion(): string;
}

const CRD_DEF: ResourceDef = {
  group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition",
  kind: "CustomResourceDefinition", namespaced: false, statusSubresource: true, custom: false,
};
const BUILTINS: ResourceDef[] = [
  { group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true, statusSubresource: false, custom: false },
  { group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, statusSubresource: false, custom: false },
  { group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true, statusSubresource: false, custom: false },
  CRD_DEF,
];

const VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"];

/** The resources a CRD defines, one per served version. Extend the Kubernetes API with CustomResourceDefinitions. */
function defsOfCrd(crd: Obj): ResourceDef[] {
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  if (!spec.group || !names.plural || !names.kind || !Array.isArray(spec.versions)) {
    throw new ApiError(422, "Invalid", `CustomResourceDefinition.apiextensions.k8s.io "${crd.metadata?.name}" is invalid: spec: needs group, names.plural, names.kind and versions`);
  }
  if (crd.metadata?.name !== `${names.plural}.${spec.group}`) {
    throw new ApiError(422, "Invalid", `CustomResourceDefinition.apiextensions.k8s.io "${crd.metadata?.name}" is invalid: metadata.name: Invalid value: must be spec.names.plural+"."+spec.group`);
  }
  return spec.versions.filter((v: Obj) => v.served !== false).map((v: Obj) => ({
    group: spec.group, version: v.name, plural: names.plural, singular: names.singular ?? names.kind.toLowerCase(), kind: names.kind,
    namespaced: spec.scope !== "Cluster", statusSubresource: v.subresources?.status !== undefined, custom: true,
    schema: v.schema?.openAPIV3Schema,
  }));
}

function allows(rules: PolicyRule[] | "*", verb: string, group: string, resource: string, name?: string): boolean {
  if (rules === "*") return true;
  return rules.some((r) =>
    (r.apiGroups.includes("*") || r.apiGroups.includes(group)) &&
    (r.resources.includes("*") || r.resources.includes(resource)) &&
    (r.verbs.includes("*") || r.verbs.includes(verb)) &&
    (!r.resourceNames?.length || (name !== undefined && r.resourceNames.includes(name))));
}

interface Route {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: "status";
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const host = opts.host ?? "127.0.0.1";
  const ca = await createCA({ commonName: "kube-apiserver double CA" });
  const cert = await createServerCert(ca, [host]);
  // etcd keeps about five minutes of changes; ten thousand stands in for that at test scale.
  const store = new ObjectStore(opts.watchHistory ?? 10_000);
  const users = new Map<string, User>();
  for (const u of opts.users ?? [{ token: `admin-${crypto.randomUUID()}`, name: "kubernetes-admin", rules: "*" as const }]) users.set(u.token, u);
  const firstToken = users.keys().next().value!;
  let latencyMs = opts.latencyMs ?? 0;
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 10_000;
  let requests = 0;
  let expiredWatches = 0;
  const auditLog: AuditEntry[] = [];
  const AUDIT_KEPT = 10_000;
  const openWatches = new Set<() => void>();

  // group/version/plural → definition; a CRD adds entries, its deletion removes them.
  const served = new Map<string, ResourceDef>();
  const routeKey = (group: string, version: string, plural: string) => `${group}/${version}/${plural}`;
  for (const d of BUILTINS) served.set(routeKey(d.group, d.version, d.plural), d);

  function installCrd(crd: Obj): Obj {
    const defs = defsOfCrd(crd);
    const stored = store.create(CRD_DEF, undefined, crd);
    const at = stored.metadata.creationTimestamp;
    // The real server reports a CRD accepted and established once it serves it.
    const established = store.update(CRD_DEF, undefined, stored.metadata.name, {
      ...stored,
      status: {
        acceptedNames: crd.spec.names,
        storedVersions: crd.spec.versions.filter((v: Obj) => v.storage).map((v: Obj) => v.name),
        conditions: [
          { type: "NamesAccepted", status: "True", reason: "NoConflicts", message: "no conflicts found", lastTransitionTime: at },
          { type: "Established", status: "True", reason: "InitialNamesAccepted", message: "the initial names have been accepted", lastTransitionTime: at },
        ],
      },
    }, "status");
    for (const d of defs) served.set(routeKey(d.group, d.version, d.plural), d);
    return established;
  }

  function uninstallCrd(crd: Obj): void {
    for (const d of defsOfCrd(crd)) {
      served.delete(routeKey(d.group, d.version, d.plural));
      store.dropAll(d);
    }
  }

  function installCrds(text: string): void {
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) throw new Error(`CRD YAML does not parse: ${doc.errors[0]!.message}`);
      const crd = doc.toJS() as Obj | null;
      if (crd?.kind === "CustomResourceDefinition") installCrd(crd);
    }
  }

  const crdTexts = opts.crds ?? readdirSync(CRD_DIR).filter((f) => f.endsWith(".yaml")).sort().map((f) => readFileSync(join(CRD_DIR, f), "utf8"));
  for (const t of crdTexts) installCrds(t);

  // ---- discovery: The Kubernetes API, "Discovery API" (the unaggregated documents) ----
  function resourceList(group: string, version: string): Obj | undefined {
    const defs = [...served.values()].filter((d) => d.group === group && d.version === version);
    if (!defs.length) return undefined;
    const resources: Obj[] = [];
    for (const d of defs) {
      resources.push({ name: d.plural, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: [...VERBS, "deletecollection"].sort() });
      if (d.statusSubresource) resources.push({ name: `${d.plural}/status`, singularName: "", namespaced: d.namespaced, kind: d.kind, verbs: ["get", "patch", "update"] });
    }
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group ? `${group}/${version}` : version, resources };
  }

  function groupList(): Obj {
    const groups = new Map<string, Set<string>>();
    for (const d of served.values()) if (d.group) groups.set(d.group, (groups.get(d.group) ?? new Set()).add(d.version));
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [...groups].map(([name, versions]) => {
        const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: vs, preferredVersion: vs[0] };
      }),
    };
  }

  function route(parts: string[]): Route | undefined {
    let group: string, version: string, rest: string[];
    if (parts[0] === "api" && parts.length >= 3) [group, version, rest] = ["", parts[1]!, parts.slice(2)];
    else if (parts[0] === "apis" && parts.length >= 4) [group, version, rest] = [parts[1]!, parts[2]!, parts.slice(3)];
    else return undefined;
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const def = served.get(routeKey(group, version, rest[0]!));
    if (!def || rest.length > 3) return undefined;
    const [, name, sub] = rest;
    if (namespace !== undefined && !def.namespaced) return undefined;
    // A namespaced object is only addressed inside its namespace; listing across namespaces is allowed.
    if (namespace === undefined && def.namespaced && name !== undefined) return undefined;
    if (sub !== undefined && !(sub === "status" && def.statusSubresource)) return undefined;
    return { def, namespace, name, subresource: sub as "status" | undefined };
  }

  async function body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    if (!text) return {};
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, "BadRequest", `the body of the request is not JSON: ${(e as Error).message}`);
    }
  }

  function send(res: ServerResponse, code: number, value: unknown): void {
    const text = JSON.stringify(value);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  function filterOf(r: Route, q: URLSearchParams) {
    const labels = parseLabelSelector(q.get("labelSelector"));
    const fields = parseFieldSelector(q.get("fieldSelector"));
    return { namespace: r.namespace, matches: (o: Obj) => labels(o.metadata.labels) && fields(o.metadata) };
  }

  /** API Concepts, "Efficient detection of changes" and "Watch bookmarks": newline-delimited JSON events. */
  function watch(r: Route, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
    const filter = filterOf(r, q);
    const apiVersion = r.def.group ? `${r.def.group}/${r.def.version}` : r.def.version;
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const line = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    let unsubscribe = () => {};
    let timers: ReturnType<typeof setTimeout>[] = [];
    const end = () => {
      unsubscribe();
      timers.forEach(clearTimeout);
      timers = [];
      openWatches.delete(end);
      if (!res.writableEnded) res.end();
    };
    openWatches.add(end);
    req.on("close", end);
    res.on("close", end);
    try {
      unsubscribe = store.watch(r.def, filter, q.get("resourceVersion") ?? undefined, line);
    } catch (e) {
      // A watch too far in the past answers 200, then one ERROR event carrying the 410 Status.
      if (e instanceof ApiError) line("ERROR", e.body());
      if (e instanceof ApiError && e.code === 410) expiredWatches++;
      end();
      return;
    }
    if (q.get("allowWatchBookmarks") === "true" || q.get("allowWatchBookmarks") === "1") {
      const bookmark = () => line("BOOKMARK", { kind: r.def.kind, apiVersion, metadata: { resourceVersion: store.resourceVersion } });
      timers.push(setInterval(bookmark, bookmarkIntervalMs) as unknown as ReturnType<typeof setTimeout>);
    }
    const timeout = Number(q.get("timeoutSeconds") ?? 0);
    if (timeout > 0) timers.push(setTimeout(end, timeout * 1000));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, audit: (e: AuditEntry) => void): Promise<void> {
    requests++;
    if (latencyMs > 0) await Bun.sleep(latencyMs);
    const url = new URL(req.url ?? "/", "https://double");
    const q = url.searchParams;
    const method = req.method ?? "GET";
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
    const user = auth ? users.get(auth[1]!) : undefined;
    if (!user) throw unauthorized();

    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const path = `/${parts.join("/")}`;
    if (method === "GET") {
      if (path === "/version") return send(res, 200, { major: "1", minor: "33", gitVersion: "v1.33.0-jmp-double", platform: "linux/amd64" });
      if (path === "/healthz" || path === "/livez" || path === "/readyz") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
        return;
      }
      if (path === "/api") return send(res, 200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
      if (path === "/apis") return send(res, 200, groupList());
      if (parts[0] === "apis" && parts.length === 2) {
        const group = groupList().groups.find((g: Obj) => g.name === parts[1]);
        if (!group) throw noResource();
        return send(res, 200, { kind: "APIGroup", apiVersion: "v1", ...group });
      }
      if ((parts[0] === "api" && parts.length === 2) || (parts[0] === "apis" && parts.length === 3)) {
        const list = parts[0] === "api" ? resourceList("", parts[1]!) : resourceList(parts[1]!, parts[2]!);
        if (!list) throw noResource();
        return send(res, 200, list);
      }
    }

    const r = route(parts);
    if (!r) throw noResource();
    const { def, namespace, name, subresource } = r;
    let verb: string;
    if (method === "GET") verb = name === undefined ? (q.get("watch") === "true" || q.get("watch") === "1" ? "watch" : "list") : "get";
    else if (method === "POST" && name === undefined) verb = "create";
    else if (method === "PUT" && name !== undefined) verb = "update";
    else if (method === "PATCH" && name !== undefined) verb = "patch";
    else if (method === "DELETE" && name !== undefined) verb = "delete";
    else throw methodNotAllowed(method);
    const resource = subresource ? `${def.plural}/${subresource}` : def.plural;
    audit({ user: user.name, verb, group: def.group, resource, namespace, name, code: 0 });
    const bound = user.namespace === undefined || user.namespace === namespace;
    if (!bound || !allows(user.rules, verb, def.group, resource, name)) throw forbidden(user.name, verb, { ...def, subresource }, namespace, name);

    switch (verb) {
      case "get":
        return send(res, 200, store.get(def, namespace, name!));
      case "list": {
        const { items, resourceVersion } = store.list(def, filterOf(r, q));
        const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
        // Built-in lists carry bare items; custom resource lists keep kind and apiVersion on each.
        if (!def.custom) for (const i of items) { delete i.kind; delete i.apiVersion; }
        return send(res, 200, { apiVersion, kind: `${def.kind}List`, metadata: { resourceVersion }, items });
      }
      case "watch":
        return watch(r, q, req, res);
      case "create": {
        const value = (await body(req)) as Obj;
        return send(res, 201, def === CRD_DEF ? installCrd(value) : store.create(def, namespace, value));
      }
      case "update":
        return send(res, 200, store.update(def, namespace, name!, (await body(req)) as Obj, subresource));
      case "patch": {
        const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
        const patch = await body(req);
        if (type === "application/merge-patch+json") return send(res, 200, store.patch(def, namespace, name!, "merge", patch, subresource));
        if (type === "application/json-patch+json") return send(res, 200, store.patch(def, namespace, name!, "json", patch, subresource));
        // Built-in kinds accept strategic merge patch; for the plain maps we store it merges as a merge patch does.
        // Custom resources have no patch-merge keys, so the real server refuses it for them with 415.
        if (type === "application/strategic-merge-patch+json" && !def.custom) return send(res, 200, store.patch(def, namespace, name!, "merge", patch, subresource));
        throw new ApiError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${def.custom ? "" : ", application/strategic-merge-patch+json"}`);
      }
      case "delete": {
        const opts = (await body(req)) as Obj;
        const existing = def === CRD_DEF ? store.get(CRD_DEF, undefined, name!) : undefined;
        const { deleted, object } = store.delete(def, namespace, name!, opts?.preconditions);
        if (existing) uninstallCrd(existing);
        // API Concepts, "Resource deletion": 202 while finalizers hold the object, 200 once it is gone.
        return deleted ? send(res, 200, success(def, name!, object.metadata.uid)) : send(res, 202, object);
      }
    }
  }

  const server: Server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    let entry: AuditEntry | undefined;
    const audit = (e: AuditEntry) => {
      entry = e;
      auditLog.push(e);
      if (auditLog.length > AUDIT_KEPT) auditLog.shift();
    };
    handle(req, res, audit).catch((e) => {
      const err = e instanceof ApiError ? e : new ApiError(500, "InternalError", `Internal error occurred: ${(e as Error).message}`);
      if (!res.headersSent) send(res, err.code, err.body());
      else res.end();
    }).finally(() => {
      if (entry) entry.code = res.statusCode;
    });
  });
  const sockets = new Set<Socket>();
  // Every socket from its TCP accept on, not only once its TLS handshake is done: one
  // still in its handshake when the server stops would keep server.close() waiting.
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  server.on("connection", track);
  server.on("secureConnection", track);

  let port = opts.port ?? 0;
  const listen = () => new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      port = (server.address() as { port: number }).port;
      resolve();
    });
  });
  await listen();
  let listening = true;

  const stop = async () => {
    if (!listening) return;
    listening = false;
    for (const end of [...openWatches]) end();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    server.closeAllConnections?.();
    await closed;
  };

  const hostInUrl = host.includes(":") ? `[${host}]` : host;
  const servedDef = (resource: string): ResourceDef => {
    const def = [...served.values()].find((d) => resourceKey(d) === resource || (!d.group && d.plural === resource));
    if (!def) throw new Error(`the double serves no resource '${resource}' (give plural.group, or secrets or configmaps)`);
    return def;
  };

  return {
    get url() {
      return `https://${hostInUrl}:${port}`;
    },
    get port() {
      return port;
    },
    caPem: ca.certPem,
    token: firstToken,
    writeKubeconfig(path, { namespace, token }) {
      const config = {
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "double", cluster: { server: `https://${hostInUrl}:${port}`, "certificate-authority-data": Buffer.from(ca.certPem).toString("base64") } }],
        users: [{ name: "double-user", user: { token: token ?? firstToken } }],
        contexts: [{ name: "double", context: { cluster: "double", user: "double-user", namespace } }],
        "current-context": "double",
      };
      writeFileSync(path, stringify(config), { mode: 0o600 });
    },
    stop,
    async start() {
      if (listening) return;
      await listen();
      listening = true;
    },
    async close() {
      await stop();
    },
    objects(resource, namespace) {
      return store.all(servedDef(resource), namespace);
    },
    changes(resource, namespace, name) {
      return store.changesOf(servedDef(resource), namespace, name);
    },
    setRules(token, rules) {
      const u = users.get(token);
      if (!u) throw new Error(`no user has the token '${token}'`);
      u.rules = rules;
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    setWatchHistory(n) {
      store.setHistorySize(n);
    },
    installCrds,
    endWatches() {
      for (const end of [...openWatches]) end();
    },
    audit: () => structuredClone(auditLog),
    stats: () => ({ requests, watches: openWatches.size, expired: expiredWatches }),
    resourceVersion: () => store.resourceVersion,
  };
}
