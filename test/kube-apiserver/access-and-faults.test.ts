/** Who may do what on the double (bearer tokens, RBAC), and the faults tests inject: down and back, slow, standalone process. */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clientsFor, collect, failure, GROUP, leaseBody, leases, startDouble, VERSION } from "./fixture.ts";
import type { PolicyRule } from "./server.ts";

const CONTROLLER = "system:serviceaccount:lab:jumpstarter-controller";
const controllerRules: PolicyRule[] = [
  { apiGroups: [GROUP], resources: ["clients", "exporters", "leases", "exporteraccesspolicies"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
  { apiGroups: [GROUP], resources: ["leases/status", "exporters/status", "clients/status"], verbs: ["get", "update", "patch"] },
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["get", "create"], resourceNames: [] },
];

let d: Awaited<ReturnType<typeof startDouble>>;
beforeAll(async () => {
  d = await startDouble({ users: [{ token: "admin-token", name: "kubernetes-admin", rules: "*" }, { token: "controller-token", name: CONTROLLER, rules: structuredClone(controllerRules) }] });
});
afterAll(() => d.api.close());

describe("authentication", () => {
  test("an unknown bearer token is 401 Unauthorized", async () => {
    const stranger = clientsFor(d.api, "lab", "not-a-token");
    const r = await failure(stranger.custom.listNamespacedCustomObject({ ...leases() }));
    expect(r.code).toBe(401);
    // client-node drops a 401's body, so the Status itself is read with a plain request.
    const res = await fetch(`${d.api.url}/apis/${GROUP}/${VERSION}/namespaces/lab/leases`, { headers: { authorization: "Bearer not-a-token" }, tls: { ca: d.api.caPem } });
    expect(await res.json()).toMatchObject({ kind: "Status", reason: "Unauthorized", message: "Unauthorized", code: 401 });
    const none = await fetch(`${d.api.url}/apis`, { tls: { ca: d.api.caPem } });
    expect(none.status).toBe(401);
  });
});

describe("RBAC", () => {
  test("a permission taken away is a 403 naming the user, verb, resource, group and namespace, as the real authorizer words it", async () => {
    const c = clientsFor(d.api, "lab", "controller-token");
    const created = await c.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("rbac") });
    await c.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "rbac", body: { ...created, status: { ended: false } } });

    d.api.setRules("controller-token", controllerRules.map((r) => (r.resources.includes("leases/status") ? { ...r, resources: ["exporters/status", "clients/status"] } : r)));
    const denied = await failure(c.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "rbac", body: { ...created, status: { ended: true } } }));
    expect(denied.code).toBe(403);
    expect(denied.status).toMatchObject({
      kind: "Status", reason: "Forbidden", code: 403,
      message: `leases.jumpstarter.dev "rbac" is forbidden: User "${CONTROLLER}" cannot update resource "leases/status" in API group "jumpstarter.dev" in the namespace "lab"`,
      details: { name: "rbac", group: GROUP, kind: "leases" },
    });
    const last = d.api.audit().at(-1)!;
    expect(last).toEqual({ user: CONTROLLER, verb: "update", group: GROUP, resource: "leases/status", namespace: "lab", name: "rbac", code: 403 });
    // The main resource is still allowed: the rule is per resource and subresource.
    await c.custom.patchNamespacedCustomObject({ ...leases(), name: "rbac", body: { spec: { release: true } } }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch));
    d.api.setRules("controller-token", structuredClone(controllerRules));
  });

  test("a list or watch without the verb is 403 without a name; the core group is named as \"\"", async () => {
    const c = clientsFor(d.api, "lab", "controller-token");
    const list = await failure(c.core.listNamespacedSecret({ namespace: "lab" }));
    expect(list.status.message).toBe(`secrets is forbidden: User "${CONTROLLER}" cannot list resource "secrets" in API group "" in the namespace "lab"`);
    const watch = await collect(c, `/apis/coordination.k8s.io/v1/namespaces/lab/leases`, {});
    await watch.until(() => watch.ended() !== false, "the refused watch to end");
    expect((watch.ended() as { statusCode?: number }).statusCode).toBe(403);
  });

  test("resourceNames limits a rule to the objects it names", async () => {
    const c = clientsFor(d.api, "lab", "controller-token");
    await d.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "jumpstarter-keys" }, data: {} } });
    await d.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "someone-elses" }, data: {} } });
    d.api.setRules("controller-token", [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: ["jumpstarter-keys"] }]);
    expect((await c.core.readNamespacedSecret({ namespace: "lab", name: "jumpstarter-keys" })).metadata!.name).toBe("jumpstarter-keys");
    expect((await failure(c.core.readNamespacedSecret({ namespace: "lab", name: "someone-elses" }))).code).toBe(403);
    d.api.setRules("controller-token", structuredClone(controllerRules));
  });
});

describe("faults", () => {
  test("stopped, the API server refuses connections and ends watches; started again on the same URL, state and versions carry on", async () => {
    const before = await d.custom.createNamespacedCustomObject({ ...leases("down"), body: leaseBody("kept") });
    const w = await collect(d, `/apis/${GROUP}/${VERSION}/namespaces/down/leases`, { resourceVersion: before.metadata.resourceVersion });
    const url = d.api.url;
    await d.api.stop();
    await w.until(() => w.ended() !== false, "the watch to end when the server stops");
    const refused = await d.custom.getNamespacedCustomObject({ ...leases("down"), name: "kept" }).then(() => "answered", (e: Error & { code?: string }) => e.code ?? e.message);
    expect(refused).toBe("ECONNREFUSED");
    await d.api.start();
    expect(d.api.url).toBe(url);
    const after = await d.custom.getNamespacedCustomObject({ ...leases("down"), name: "kept" });
    expect(after).toEqual(before);
    const next = await d.custom.createNamespacedCustomObject({ ...leases("down"), body: leaseBody("new") });
    expect(Number(next.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
    const resumed = await collect(d, `/apis/${GROUP}/${VERSION}/namespaces/down/leases`, { resourceVersion: before.metadata.resourceVersion });
    await resumed.until((e) => e.length === 1, "the change made after the restart");
    resumed.stop();
    expect(resumed.events[0]!.object.metadata.name).toBe("new");
  });

  test("injected latency delays every answer", async () => {
    d.api.setLatency(300);
    const started = Date.now();
    await d.custom.listNamespacedCustomObject({ ...leases() });
    const took = Date.now() - started;
    d.api.setLatency(0);
    expect(took).toBeGreaterThanOrEqual(290);
  });
});

describe("standalone", () => {
  test("main.ts prints one ready line, writes a kubeconfig client-node can use, and exits 0 on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kube-double-main-"));
    let proc: ReturnType<typeof Bun.spawn> | undefined;
    try {
      const kubeconfig = join(dir, "kubeconfig");
      proc = Bun.spawn([process.execPath, join(import.meta.dir, "main.ts"), "--port", "0", "--kubeconfig", kubeconfig, "--namespace", "solo"], { stdout: "pipe", stderr: "pipe" });
      const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect(out).toMatch(/^kube-apiserver double ready at https:\/\/127\.0\.0\.1:\d+ \(kubeconfig .*, namespace solo\)\n$/);
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfig);
      expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe("solo");
      const custom = kc.makeApiClient(k8s.CustomObjectsApi);
      await custom.createNamespacedCustomObject({ ...leases("solo"), body: leaseBody("from-outside") });
      expect((await custom.listNamespacedCustomObject({ ...leases("solo") })).items.map((i: any) => i.metadata.name)).toEqual(["from-outside"]);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      // A failed assertion above must not leave the double running.
      if (proc && proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a bad flag is one line on stderr and exit code 2", async () => {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "main.ts"), "--port", "abc", "--kubeconfig", "/tmp/x"], { stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(2);
    expect(err).toBe("kube-apiserver double: --port must be a port number: got 'abc'\n");
  });
});
