/**
 * Kubernetes-only rules of the store (the shared ones are in ../contract.ts): an
 * exporter's leaseRef to a lease nobody has seen, and writes to another namespace.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { ALL_BUT_LEASE_STATUS } from "../../../../test/distributed/kube-lab.ts";
import { type KubeApiServer, startKubeApiServer } from "../../../../test/kube-apiserver/server.ts";
import { client, exporter, lease } from "../contract.ts";
import { connect, KubeApi } from "./api.ts";
import { KubernetesStore } from "./store.ts";

let dir: string;
let api: KubeApiServer;
let store: KubernetesStore;
let now = 1_767_268_800_000;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-kube-store-"));
  api = await startKubeApiServer();
  const kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig, { namespace: "lab" });
  store = await KubernetesStore.open(new KubeApi(connect({ kubeconfig })), { now: () => now });
});

afterEach(async () => {
  store.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

test("an exporter naming a lease not seen is held for 10 s (its lease is on the way), then free (the lease was deleted)", async () => {
  await store.transaction((w) => w.createExporter(exporter("pi-1", { leaseName: "ghost" })));
  expect(store.getExporter("lab", "pi-1")!.leaseName).toBe("ghost");
  now += 9_000;
  expect(store.scanExporters("lab")[0]!.leaseName).toBe("ghost");
  now += 1_000;
  expect(store.getExporter("lab", "pi-1")!.leaseName).toBeNull();
  // Once the lease shows up and names the exporter back, it holds it.
  await store.transaction((w) => w.createLease(lease("ghost", { exporter: "pi-1" })));
  expect(store.getExporter("lab", "pi-1")!.leaseName).toBe("ghost");
  // Ended, it holds it no more, whatever the exporter's leaseRef says.
  await store.transaction((w) => w.updateLease({ ...store.getLease("lab", "ghost")!, ended: true }));
  expect(store.getExporter("lab", "pi-1")!.leaseName).toBeNull();
});

test("a write to a namespace the store does not keep is InvalidArgument naming both; reads there find nothing", async () => {
  await expect(store.transaction((w) => w.createClient({ ...client("alice"), namespace: "default" }))).rejects.toThrow(
    expect.objectContaining({ code: Code.InvalidArgument, message: "this controller keeps namespace 'lab' (its --namespace): it cannot write to namespace 'default'" }),
  );
  expect(store.getClient("default", "alice")).toBeNull();
  expect(store.listExporters("default")).toEqual([]);
  expect(api.objects("clients.jumpstarter.dev")).toEqual([]);
});

test("a create whose status write fails is undone: the caller is told, and no half-made lease stays to be scheduled", async () => {
  await store.transaction((w) => {
    w.createClient(client("alice"));
    w.createExporter(exporter("pi-1"));
  });
  api.setRules(api.token, ALL_BUT_LEASE_STATUS);
  await expect(store.transaction((w) => {
    // As an assignment does: the exporter (written first) names the new lease.
    w.updateExporter({ ...store.getExporter("lab", "pi-1")!, leaseName: "l1" });
    w.createLease(lease("l1", { exporter: "pi-1" }));
  })).rejects.toThrow("Kubernetes role may not update leases.jumpstarter.dev/status");
  expect(api.objects("leases.jumpstarter.dev")).toEqual([]);
  expect(store.getLease("lab", "l1")).toBeNull();
  // Its exporter is free at once, not after the 10 s an unseen lease is believed.
  expect(store.getExporter("lab", "pi-1")!.leaseName).toBeNull();
  // Allowed again, the same create goes through whole.
  api.setRules(api.token, "*");
  await store.transaction((w) => w.createLease(lease("l1", { exporter: "pi-1" })));
  expect(api.objects("leases.jumpstarter.dev")).toMatchObject([{ metadata: { name: "l1" }, status: { exporterRef: { name: "pi-1" } } }]);
});

test("a lease that ends is written before one that takes its exporter, whichever the transaction touched first", async () => {
  await store.transaction((w) => {
    w.createClient(client("alice"));
    w.createExporter(exporter("pi-1", { leaseName: "old" }));
    w.createLease(lease("old", { exporter: "pi-1" }));
  });
  // As a create whose pass ends a released lease and hands its exporter to the new one.
  await store.transaction((w) => {
    w.createLease(lease("new"));
    w.updateExporter({ ...store.getExporter("lab", "pi-1")!, leaseName: "new" });
    w.updateLease({ ...store.getLease("lab", "old")!, released: true, ended: true });
    w.updateLease({ ...store.getLease("lab", "new")!, exporter: "pi-1" });
  });
  const when = (name: string, what: (o: { status?: { ended?: boolean; exporterRef?: { name: string } } }) => boolean) =>
    api.changes("leases.jumpstarter.dev", "lab", name).find((c) => what(c.object))!.rv;
  expect(when("old", (o) => o.status?.ended === true)).toBeLessThan(when("new", (o) => o.status?.exporterRef?.name === "pi-1"));
});
