/** The double started for one test file, and @kubernetes/client-node pointed at it through a kubeconfig file, as production code loads it. */
import * as k8s from "@kubernetes/client-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions } from "./server.ts";

export const GROUP = "jumpstarter.dev";
export const VERSION = "v1alpha1";

export interface Clients {
  kc: k8s.KubeConfig;
  custom: k8s.CustomObjectsApi;
  coordination: k8s.CoordinationV1Api;
  core: k8s.CoreV1Api;
  watch: k8s.Watch;
}

export function clientsFor(api: KubeApiServer, namespace: string, token?: string): Clients {
  const dir = mkdtempSync(join(tmpdir(), "kube-double-"));
  const file = join(dir, "kubeconfig");
  api.writeKubeconfig(file, { namespace, token });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  rmSync(dir, { recursive: true, force: true });
  return {
    kc,
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    core: kc.makeApiClient(k8s.CoreV1Api),
    watch: new k8s.Watch(kc),
  };
}

export async function startDouble(opts: KubeApiServerOptions = {}, namespace = "lab"): Promise<{ api: KubeApiServer } & Clients> {
  const api = await startKubeApiServer(opts);
  return { api, ...clientsFor(api, namespace) };
}

/** The HTTP code and parsed Status of a failed client-node call (fails the test if the call succeeds). */
export async function failure(p: Promise<unknown>): Promise<{ code: number; status: Record<string, any> }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof k8s.ApiException) {
      const body = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
      return { code: e.code, status: body };
    }
    throw e;
  }
  throw new Error("the call succeeded; a failure was expected");
}

export const leases = (namespace = "lab") => ({ group: GROUP, version: VERSION, namespace, plural: "leases" });

export function leaseBody(name: string, extra: Record<string, unknown> = {}) {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: "Lease", metadata: { name, ...extra }, spec: { clientRef: { name: "alice" }, selector: { matchLabels: { board: "rpi4" } } } };
}

export interface WatchEvent {
  type: string;
  object: any;
}

/** A running watch that collects its events; `until` waits for a condition on them. */
export async function collect(clients: Clients, path: string, query: Record<string, string | number | boolean | undefined>) {
  const events: WatchEvent[] = [];
  let ended: unknown = false;
  const ctl = await clients.watch.watch(path, query, (type, object) => events.push({ type, object }), (err) => (ended = err ?? true));
  return {
    events,
    ended: () => ended,
    async until(cond: (events: WatchEvent[]) => boolean, what: string, ms = 5000) {
      const deadline = Date.now() + ms;
      while (!cond(events)) {
        if (Date.now() > deadline) throw new Error(`watch did not see ${what} within ${ms} ms; it saw ${JSON.stringify(events.map((e) => `${e.type} ${e.object?.metadata?.name ?? e.object?.reason ?? ""}`))}`);
        await Bun.sleep(10);
      }
    },
    stop: () => ctl.abort(),
  };
}
