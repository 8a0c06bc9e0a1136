/**
 * Starting on a cluster: the first calls, with what each failure means said in one
 * line. A CRD missing (404 on listing its kind) names it and `jmp controller
 * manifests`; 403 names the verb and resource the account lacks; 401 says the
 * credentials were refused. An API server that does not answer (or answers 5xx) is
 * retried with backoff, with one log line a minute, until it does.
 */
import { UserError } from "../../../common/errors.ts";
import { getLogger } from "../../../common/log.ts";
import { callOf, connect, GROUP, KubeApi, KubeError } from "./api.ts";

const log = getLogger("controller");
const MAX_BACKOFF_MS = 10_000;
const LOG_EVERY_MS = 60_000;

export function connectOrExplain(opts: { kubeconfig?: string; namespace?: string }): KubeApi {
  try {
    return new KubeApi(connect(opts));
  } catch (e) {
    const hint = opts.kubeconfig ? "" : " (--kubeconfig FILE, $KUBECONFIG or ~/.kube/config; in a pod, its service account)";
    throw new UserError(`${(e as Error).message}${hint}`, 2);
  }
}

/** What a failed call means for the admin; undefined when it is worth retrying. */
export function explain(e: KubeError, api: KubeApi): UserError | undefined {
  const { verb, resource } = callOf(e);
  const where = `namespace '${api.namespace}' of ${api.connection.kubeconfig.getCurrentCluster()?.server ?? "the cluster"}`;
  if (e.code === 404 && verb === "list" && resource.endsWith(`.${GROUP}`)) {
    return new UserError(
      `the CustomResourceDefinition ${resource} is not installed in the cluster: install the CRDs with 'jmp controller manifests | kubectl apply -f -'`,
      2,
    );
  }
  if (e.code === 403) {
    return new UserError(`the controller may not ${verb} ${resource} in ${where} (403 Forbidden): grant it, as the Role in 'jmp controller manifests' does`, 2);
  }
  if (e.code === 401) return new UserError(`the Kubernetes API server refused the credentials from ${api.connection.source} (401 Unauthorized)`, 2);
  if (e.code === 0 || e.code >= 500 || e.code === 429) return undefined;
  return new UserError(e.message, 2);
}

/** Runs `step` until it succeeds, retrying while the API server is unreachable; other failures are explained and thrown. */
export async function untilReachable<T>(api: KubeApi, what: string, step: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  let backoff = 250;
  let lastLog = 0;
  for (;;) {
    try {
      return await step();
    } catch (e) {
      if (!(e instanceof KubeError)) throw e;
      const fatal = explain(e, api);
      if (fatal) throw fatal;
      if (Date.now() - lastLog >= LOG_EVERY_MS) {
        lastLog = Date.now();
        log.warn(`${what}: ${e.message}; retrying (the Kubernetes API server from ${api.connection.source})`);
      }
      if (signal?.aborted) throw new UserError(`stopped while waiting for the Kubernetes API server: ${e.message}`);
      await Bun.sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }
}
