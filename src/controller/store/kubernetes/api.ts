/**
 * The few Kubernetes API calls the store makes, over the official client
 * (`@kubernetes/client-node`: kubeconfig loading, auth, TLS, watches). Every failure
 * becomes a KubeError carrying the HTTP code and the Status reason, so the store can
 * tell a conflict (409) from a gone watch version (410) from an unreachable server.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";

export const GROUP = "jumpstarter.dev";
export const VERSION = "v1alpha1";

/** A Kubernetes object as JSON; only the fields we read are typed. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface KubeList {
  metadata: { resourceVersion: string };
  items: KubeObject[];
}

/** An API call that failed: `code` 0 when no HTTP answer came (server unreachable). */
export class KubeError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string = "",
  ) {
    super(message);
  }
}

/** The verb and resource of a failed call ("update", "leases.jumpstarter.dev/status"): its message begins with them. */
export function callOf(e: KubeError): { verb: string; resource: string } {
  const [verb = "", resource = ""] = e.message.split(/[ :]/);
  return { verb, resource };
}

/** Whether `e` is a failed API call answered with one of `codes` (0: no answer came). */
export function isKubeError(e: unknown, ...codes: number[]): e is KubeError {
  return e instanceof KubeError && codes.includes(e.code);
}

/** The custom resources the store keeps, by plural. */
export type Plural = "clients" | "exporters" | "leases" | "exporteraccesspolicies";
export const KINDS: Record<Plural, string> = {
  clients: "Client", exporters: "Exporter", leases: "Lease", exporteraccesspolicies: "ExporterAccessPolicy",
};

export interface KubeConnection {
  kubeconfig: k8s.KubeConfig;
  namespace: string;
  /** Where the configuration came from, for messages. */
  source: string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * The cluster to use: `--kubeconfig FILE`; else the pod's service account when in a
 * pod; else $KUBECONFIG; else ~/.kube/config. The namespace: `--namespace`, else the
 * pod's, else the kubeconfig context's, else "default".
 */
export function connect(opts: { kubeconfig?: string; namespace?: string; env?: NodeJS.ProcessEnv }): KubeConnection {
  const env = opts.env ?? process.env;
  const kc = new k8s.KubeConfig();
  let source: string;
  let namespace: string | undefined;
  const fromFile = (file: string) => {
    if (!existsSync(file)) throw new KubeError(`the kubeconfig ${file} does not exist`, 0);
    try {
      kc.loadFromFile(file);
    } catch (e) {
      throw new KubeError(`cannot read the kubeconfig ${file}: ${(e as Error).message}`, 0);
    }
    if (!kc.getCurrentCluster()) throw new KubeError(`the kubeconfig ${file} names no current cluster (current-context)`, 0);
    namespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
    return file;
  };
  if (opts.kubeconfig) source = fromFile(opts.kubeconfig);
  else if (env.KUBERNETES_SERVICE_HOST && existsSync(join(SA_DIR, "token"))) {
    kc.loadFromCluster();
    source = "the pod's service account";
    try {
      // The Deployment also passes it as POD_NAMESPACE (the downward API).
      namespace = env.POD_NAMESPACE || readFileSync(join(SA_DIR, "namespace"), "utf8").trim();
    } catch {
      // A service account without its namespace file: fall back below.
    }
  } else if (env.KUBECONFIG) source = fromFile(env.KUBECONFIG.split(":")[0]!);
  else source = fromFile(join(env.HOME ?? homedir(), ".kube", "config"));
  return { kubeconfig: kc, namespace: opts.namespace || namespace || "default", source };
}

/** Turns whatever the client threw into a KubeError. */
export function kubeError(e: unknown, what: string): KubeError {
  if (e instanceof KubeError) return e;
  if (e instanceof k8s.ApiException) {
    let status: { message?: string; reason?: string } = {};
    try {
      status = typeof e.body === "string" ? JSON.parse(e.body) : (e.body as typeof status);
    } catch {
      // Not a Status body (a proxy's page): the code says enough.
    }
    return new KubeError(`${what}: ${status.message ?? `HTTP ${e.code}`}`, e.code, status.reason ?? "");
  }
  const err = e as Error & { code?: string; cause?: { code?: string } };
  return new KubeError(`${what}: ${err.message ?? String(e)}`, 0, err.code ?? err.cause?.code ?? "");
}

/** The calls, bound to one namespace. */
export class KubeApi {
  readonly namespace: string;
  private readonly objects: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly extensions: k8s.ApiextensionsV1Api;
  private readonly watcher: k8s.Watch;

  constructor(readonly connection: KubeConnection) {
    const kc = connection.kubeconfig;
    this.namespace = connection.namespace;
    this.objects = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    this.extensions = kc.makeApiClient(k8s.ApiextensionsV1Api);
    this.watcher = new k8s.Watch(kc);
  }

  private async call<T>(what: string, fn: () => Promise<unknown>): Promise<T> {
    try {
      return (await fn()) as T;
    } catch (e) {
      throw kubeError(e, what);
    }
  }

  private ref(plural: Plural) {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural };
  }

  list(plural: Plural): Promise<KubeList> {
    return this.call(`list ${plural}.${GROUP}`, () => this.objects.listNamespacedCustomObject(this.ref(plural)));
  }

  get(plural: Plural, name: string): Promise<KubeObject> {
    return this.call(`get ${plural}.${GROUP} ${name}`, () => this.objects.getNamespacedCustomObject({ ...this.ref(plural), name }));
  }

  create(plural: Plural, body: KubeObject): Promise<KubeObject> {
    return this.call(`create ${plural}.${GROUP} ${body.metadata.name}`, () =>
      this.objects.createNamespacedCustomObject({ ...this.ref(plural), body }));
  }

  /** PUT with the body's resourceVersion as the precondition (409 when it moved on). */
  replace(plural: Plural, body: KubeObject): Promise<KubeObject> {
    return this.call(`update ${plural}.${GROUP} ${body.metadata.name}`, () =>
      this.objects.replaceNamespacedCustomObject({ ...this.ref(plural), name: body.metadata.name, body }));
  }

  replaceStatus(plural: Plural, body: KubeObject): Promise<KubeObject> {
    return this.call(`update ${plural}.${GROUP}/status ${body.metadata.name}`, () =>
      this.objects.replaceNamespacedCustomObjectStatus({ ...this.ref(plural), name: body.metadata.name, body }));
  }

  /** DELETE, conditional on `resourceVersion` when given. */
  delete(plural: Plural, name: string, resourceVersion?: string): Promise<unknown> {
    const body = resourceVersion !== undefined ? { preconditions: { resourceVersion } } : {};
    return this.call(`delete ${plural}.${GROUP} ${name}`, () => this.objects.deleteNamespacedCustomObject({ ...this.ref(plural), name, body }));
  }

  /**
   * Watches from `resourceVersion` with bookmarks; `onEvent` gets ADDED, MODIFIED,
   * DELETED, BOOKMARK and ERROR (a Status, e.g. 410 Gone); `onDone` when the stream ends.
   * Returns the abort handle.
   */
  watch(
    plural: Plural,
    resourceVersion: string,
    onEvent: (type: string, obj: KubeObject) => void,
    onDone: (err?: KubeError) => void,
  ): Promise<AbortController> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${plural}`;
    return this.call(`watch ${plural}.${GROUP}`, () =>
      this.watcher.watch(path, { resourceVersion, allowWatchBookmarks: true }, (type, obj) => onEvent(type, obj as KubeObject), (err) =>
        onDone(err ? kubeError(err, `watch ${plural}.${GROUP}`) : undefined)));
  }

  /** The CRD's name when it is installed, else null (404). */
  async crdInstalled(plural: Plural): Promise<boolean> {
    try {
      await this.call(`get customresourcedefinitions ${plural}.${GROUP}`, () =>
        this.extensions.readCustomResourceDefinition({ name: `${plural}.${GROUP}` }));
      return true;
    } catch (e) {
      if (isKubeError(e, 404)) return false;
      throw e;
    }
  }

  getSecret(name: string): Promise<k8s.V1Secret> {
    return this.call(`get secrets ${name}`, () => this.core.readNamespacedSecret({ name, namespace: this.namespace }));
  }

  createSecret(body: k8s.V1Secret): Promise<k8s.V1Secret> {
    return this.call(`create secrets ${body.metadata?.name}`, () => this.core.createNamespacedSecret({ namespace: this.namespace, body }));
  }

  listConfigMaps(labelSelector: string): Promise<k8s.V1ConfigMapList> {
    return this.call("list configmaps", () => this.core.listNamespacedConfigMap({ namespace: this.namespace, labelSelector }));
  }

  getConfigMap(name: string): Promise<k8s.V1ConfigMap> {
    return this.call(`get configmaps ${name}`, () => this.core.readNamespacedConfigMap({ name, namespace: this.namespace }));
  }

  createConfigMap(body: k8s.V1ConfigMap): Promise<k8s.V1ConfigMap> {
    return this.call(`create configmaps ${body.metadata?.name}`, () => this.core.createNamespacedConfigMap({ namespace: this.namespace, body }));
  }

  /** PUT with the body's resourceVersion as the precondition (409 when it moved on). */
  replaceConfigMap(body: k8s.V1ConfigMap): Promise<k8s.V1ConfigMap> {
    return this.call(`update configmaps ${body.metadata?.name}`, () =>
      this.core.replaceNamespacedConfigMap({ name: body.metadata!.name!, namespace: this.namespace, body }));
  }

  deleteConfigMap(name: string): Promise<unknown> {
    return this.call(`delete configmaps ${name}`, () => this.core.deleteNamespacedConfigMap({ name, namespace: this.namespace }));
  }

  getLease(name: string): Promise<k8s.V1Lease> {
    return this.call(`get leases.coordination.k8s.io ${name}`, () =>
      this.coordination.readNamespacedLease({ name, namespace: this.namespace }));
  }

  createLease(body: k8s.V1Lease): Promise<k8s.V1Lease> {
    return this.call(`create leases.coordination.k8s.io ${body.metadata?.name}`, () =>
      this.coordination.createNamespacedLease({ namespace: this.namespace, body }));
  }

  replaceLease(body: k8s.V1Lease): Promise<k8s.V1Lease> {
    return this.call(`update leases.coordination.k8s.io ${body.metadata?.name}`, () =>
      this.coordination.replaceNamespacedLease({ name: body.metadata!.name!, namespace: this.namespace, body }));
  }
}
