/** Watches on the double through client-node's Watch, as the Kubernetes store's cache is fed. */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { collect, GROUP, leaseBody, leases, startDouble, VERSION } from "./fixture.ts";

let d: Awaited<ReturnType<typeof startDouble>>;
beforeAll(async () => {
  d = await startDouble({ bookmarkIntervalMs: 100 });
});
afterAll(() => d.api.close());

const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const path = (ns: string) => `/apis/${GROUP}/${VERSION}/namespaces/${ns}/leases`;
const summary = (events: { type: string; object: any }[]) => events.filter((e) => e.type !== "BOOKMARK").map((e) => `${e.type} ${e.object.metadata.name}`);

describe("list then watch", () => {
  test("a watch from a list's resourceVersion sees every later change, in order, and nothing before", async () => {
    const ns = "w1";
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("before") });
    const list = await d.custom.listNamespacedCustomObject({ ...leases(ns) });
    const w = await collect(d, path(ns), { resourceVersion: list.metadata.resourceVersion });
    const created = await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("after") });
    const patched = await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "after", body: { spec: { release: true } } }, merge);
    await d.custom.deleteNamespacedCustomObject({ ...leases(ns), name: "after" });
    await w.until((e) => e.length >= 3, "three changes");
    w.stop();
    expect(summary(w.events)).toEqual(["ADDED after", "MODIFIED after", "DELETED after"]);
    expect(w.events[0]!.object.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    expect(w.events[1]!.object.metadata.resourceVersion).toBe(patched.metadata.resourceVersion);
    expect(Number(w.events[2]!.object.metadata.resourceVersion)).toBeGreaterThan(Number(patched.metadata.resourceVersion));
  });

  test("without a resourceVersion the current objects arrive first as ADDED", async () => {
    const ns = "w2";
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("x1") });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("x2") });
    const w = await collect(d, path(ns), {});
    await w.until((e) => e.length >= 2, "the two existing objects");
    w.stop();
    expect(summary(w.events)).toEqual(["ADDED x1", "ADDED x2"]);
  });

  test("a watch resumed from the last resourceVersion it saw gets exactly what it missed", async () => {
    const ns = "w3";
    const w1 = await collect(d, path(ns), { resourceVersion: d.api.resourceVersion() });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("r1") });
    await w1.until((e) => e.length === 1, "r1");
    w1.stop();
    const last = w1.events[0]!.object.metadata.resourceVersion;
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("r2") });
    await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "r1", body: { spec: { release: true } } }, merge);
    const w2 = await collect(d, path(ns), { resourceVersion: last });
    await w2.until((e) => e.length >= 2, "the two missed changes");
    await Bun.sleep(100);
    w2.stop();
    expect(summary(w2.events)).toEqual(["ADDED r2", "MODIFIED r1"]);
  });

  test("a resourceVersion older than the kept history is an ERROR event carrying 410 Expired, then the watch ends", async () => {
    const small = await startDouble({ watchHistory: 3 });
    try {
      const list = await small.custom.listNamespacedCustomObject({ ...leases() });
      for (let i = 0; i < 5; i++) await small.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody(`old-${i}`) });
      const w = await collect(small, path("lab"), { resourceVersion: list.metadata.resourceVersion });
      await w.until((e) => e.length === 1, "the error event");
      await w.until(() => w.ended() !== false, "the end of the watch");
      expect(w.events[0]!.type).toBe("ERROR");
      expect(w.events[0]!.object).toMatchObject({ kind: "Status", status: "Failure", reason: "Expired", code: 410 });
      expect(w.events[0]!.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
      // From a version still in history the same watch works.
      const fresh = await collect(small, path("lab"), { resourceVersion: small.api.resourceVersion() });
      await small.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("new") });
      await fresh.until((e) => e.length === 1, "the new object");
      fresh.stop();
    } finally {
      await small.api.close();
    }
  });

  test("client-node's informer, its watch ended and history gone meanwhile, gets 410 and lists again", async () => {
    const small = await startDouble({ watchHistory: 2 });
    try {
      const ns = "inf";
      const lister = () => small.custom.listNamespacedCustomObject({ ...leases(ns) });
      const informer = k8s.makeInformer(small.kc, path(ns), lister as never);
      const seen = new Set<string>();
      informer.on("add", (o: any) => seen.add(o.metadata.name));
      await informer.start();
      await small.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("i0") });
      const waitFor = async (name: string) => {
        const deadline = Date.now() + 5000;
        while (!seen.has(name) && Date.now() < deadline) await Bun.sleep(10);
        expect(seen.has(name)).toBe(true);
      };
      await waitFor("i0");
      // The informer's resumed watch is held for 400 ms; five writes meanwhile push its version out of history.
      small.api.setLatency(400);
      small.api.endWatches();
      await Bun.sleep(100);
      small.api.setLatency(0);
      for (let i = 1; i <= 5; i++) await small.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody(`i${i}`) });
      await waitFor("i5");
      expect([...seen].sort()).toEqual(["i0", "i1", "i2", "i3", "i4", "i5"]);
      expect(small.api.stats().expired).toBe(1);
      await informer.stop();
    } finally {
      await small.api.close();
    }
  });
});

describe("bookmarks", () => {
  test("with allowWatchBookmarks the watch gets BOOKMARK events carrying the current resourceVersion; without, none", async () => {
    const ns = "bm";
    const created = await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("b") });
    const withMarks = await collect(d, path(ns), { resourceVersion: created.metadata.resourceVersion, allowWatchBookmarks: true });
    const without = await collect(d, path(ns), { resourceVersion: created.metadata.resourceVersion });
    await withMarks.until((e) => e.some((x) => x.type === "BOOKMARK"), "a bookmark");
    await Bun.sleep(250);
    withMarks.stop();
    without.stop();
    const mark = withMarks.events.find((e) => e.type === "BOOKMARK")!;
    expect(mark.object).toMatchObject({ kind: "Lease", apiVersion: `${GROUP}/${VERSION}` });
    expect(Number(mark.object.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(created.metadata.resourceVersion));
    expect(without.events.filter((e) => e.type === "BOOKMARK")).toEqual([]);
  });
});

describe("selectors and finalizers on watch", () => {
  test("an object that stops matching the selector arrives as DELETED, one that starts as ADDED", async () => {
    const ns = "wsel";
    const w = await collect(d, path(ns), { resourceVersion: d.api.resourceVersion(), labelSelector: "pool=a" });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: { ...leaseBody("s"), metadata: { name: "s", labels: { pool: "b" } } } });
    await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "s", body: { metadata: { labels: { pool: "a" } } } }, merge);
    await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "s", body: { spec: { release: true } } }, merge);
    await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "s", body: { metadata: { labels: { pool: "b" } } } }, merge);
    await w.until((e) => e.length >= 3, "enter, change, leave");
    w.stop();
    expect(summary(w.events)).toEqual(["ADDED s", "MODIFIED s", "DELETED s"]);
  });

  test("fieldSelector metadata.name narrows a watch to one object", async () => {
    const ns = "wfield";
    const w = await collect(d, path(ns), { resourceVersion: d.api.resourceVersion(), fieldSelector: "metadata.name=only" });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("other") });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: leaseBody("only") });
    await w.until((e) => e.length >= 1, "the named object");
    await Bun.sleep(100);
    w.stop();
    expect(summary(w.events)).toEqual(["ADDED only"]);
  });

  test("a delete held by a finalizer is MODIFIED with deletionTimestamp; removing the finalizer is DELETED", async () => {
    const ns = "wfin";
    const w = await collect(d, path(ns), { resourceVersion: d.api.resourceVersion() });
    await d.custom.createNamespacedCustomObject({ ...leases(ns), body: { ...leaseBody("f"), metadata: { name: "f", finalizers: ["jumpstarter.dev/cleanup"] } } });
    await d.custom.deleteNamespacedCustomObject({ ...leases(ns), name: "f" });
    await d.custom.patchNamespacedCustomObject({ ...leases(ns), name: "f", body: { metadata: { finalizers: [] } } }, merge);
    await w.until((e) => e.length >= 3, "create, mark, delete");
    w.stop();
    expect(summary(w.events)).toEqual(["ADDED f", "MODIFIED f", "DELETED f"]);
    expect(w.events[1]!.object.metadata.deletionTimestamp).toBeString();
  });

  test("timeoutSeconds ends the watch from the server side", async () => {
    const w = await collect(d, path("wto"), { resourceVersion: d.api.resourceVersion(), timeoutSeconds: 1 });
    const started = Date.now();
    await w.until(() => w.ended() !== false, "the end of the watch", 5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(w.ended()).toBe(true);
  });
});
