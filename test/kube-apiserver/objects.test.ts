/** The double's object semantics, driven by @kubernetes/client-node as the Kubernetes store drives a real cluster. */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { failure, GROUP, leaseBody, leases, startDouble, VERSION } from "./fixture.ts";

let d: Awaited<ReturnType<typeof startDouble>>;
beforeAll(async () => {
  d = await startDouble();
});
afterAll(() => d.api.close());

const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const jsonPatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch);

describe("create and get", () => {
  test("create fills uid, resourceVersion, generation and creationTimestamp; status on create is dropped", async () => {
    const created = await d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody("create-1"), status: { ended: true } } });
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata.resourceVersion).toMatch(/^[0-9]+$/);
    expect(created.metadata.generation).toBe(1);
    expect(created.metadata.namespace).toBe("lab");
    expect(Date.parse(created.metadata.creationTimestamp)).toBeGreaterThan(Date.now() - 60_000);
    expect(created.status).toBeUndefined();
    const got = await d.custom.getNamespacedCustomObject({ ...leases(), name: "create-1" });
    expect(got).toEqual(created);
  });

  test("resourceVersion is one counter across resources: every write gets a larger one", async () => {
    const a = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("rv-a") });
    const secret = await d.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "rv-s" }, data: { k: "dg==" } } });
    const b = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("rv-b") });
    expect(Number(secret.metadata!.resourceVersion)).toBe(Number(a.metadata.resourceVersion) + 1);
    expect(Number(b.metadata.resourceVersion)).toBe(Number(secret.metadata!.resourceVersion) + 1);
  });

  test("generateName gets a five-character suffix", async () => {
    const created = await d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody(""), metadata: { generateName: "gen-" } } });
    expect(created.metadata.name).toMatch(/^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });

  test("an existing name is 409 AlreadyExists; a missing object is 404 NotFound; both with a Status", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("dup") });
    const dup = await failure(d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("dup") }));
    expect(dup.code).toBe(409);
    expect(dup.status).toMatchObject({ kind: "Status", status: "Failure", reason: "AlreadyExists", code: 409, message: 'leases.jumpstarter.dev "dup" already exists', details: { name: "dup", group: GROUP, kind: "leases" } });
    const missing = await failure(d.custom.getNamespacedCustomObject({ ...leases(), name: "absent" }));
    expect(missing.code).toBe(404);
    expect(missing.status).toMatchObject({ reason: "NotFound", message: 'leases.jumpstarter.dev "absent" not found' });
  });

  test("a name that is not a DNS subdomain, or none at all, is 422 Invalid naming the field", async () => {
    const bad = await failure(d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("Not_OK") }));
    expect(bad.code).toBe(422);
    expect(bad.status.message).toContain("metadata.name: Invalid value");
    const none = await failure(d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody(""), metadata: {} } }));
    expect(none.status.message).toContain("name or generateName is required");
  });

  test("objects are namespaced: the same name in another namespace is another object", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases("lab"), body: leaseBody("twin") });
    await d.custom.createNamespacedCustomObject({ ...leases("other"), body: leaseBody("twin") });
    expect(d.api.objects("leases.jumpstarter.dev").filter((o) => o.metadata.name === "twin").map((o) => o.metadata.namespace).sort()).toEqual(["lab", "other"]);
  });
});

describe("optimistic concurrency and generation", () => {
  test("an update with a stale resourceVersion is 409 Conflict, worded as the real server words it", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("occ") });
    const v2 = await d.custom.replaceNamespacedCustomObject({ ...leases(), name: "occ", body: { ...v1, spec: { ...v1.spec, duration: "1h" } } });
    expect(Number(v2.metadata.resourceVersion)).toBeGreaterThan(Number(v1.metadata.resourceVersion));
    const stale = await failure(d.custom.replaceNamespacedCustomObject({ ...leases(), name: "occ", body: { ...v1, spec: { ...v1.spec, duration: "2h" } } }));
    expect(stale.code).toBe(409);
    expect(stale.status).toMatchObject({
      kind: "Status", reason: "Conflict", code: 409,
      message: 'Operation cannot be fulfilled on leases.jumpstarter.dev "occ": the object has been modified; please apply your changes to the latest version and try again',
      details: { name: "occ", group: GROUP, kind: "leases" },
    });
    expect((await d.custom.getNamespacedCustomObject({ ...leases(), name: "occ" })).spec.duration).toBe("1h");
  });

  test("generation counts spec changes only; a write that changes nothing keeps the resourceVersion", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("gen") });
    const labelled = await d.custom.replaceNamespacedCustomObject({ ...leases(), name: "gen", body: { ...v1, metadata: { ...v1.metadata, labels: { a: "b" } } } });
    expect(labelled.metadata.generation).toBe(1);
    const specChanged = await d.custom.patchNamespacedCustomObject({ ...leases(), name: "gen", body: { spec: { release: true } } }, merge);
    expect(specChanged.metadata.generation).toBe(2);
    const same = await d.custom.replaceNamespacedCustomObject({ ...leases(), name: "gen", body: specChanged });
    expect(same.metadata.resourceVersion).toBe(specChanged.metadata.resourceVersion);
  });

  test("uid and creationTimestamp survive an update that tries to change them", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("immut") });
    const v2 = await d.custom.replaceNamespacedCustomObject({ ...leases(), name: "immut", body: { ...v1, metadata: { ...v1.metadata, uid: "x", creationTimestamp: "2000-01-01T00:00:00Z" } } });
    expect(v2.metadata.uid).toBe(v1.metadata.uid);
    expect(v2.metadata.creationTimestamp).toBe(v1.metadata.creationTimestamp);
  });
});

describe("status subresource", () => {
  test("the main resource ignores status; /status ignores spec and metadata", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("st") });
    const main = await d.custom.replaceNamespacedCustomObject({ ...leases(), name: "st", body: { ...v1, status: { ended: true } } });
    expect(main.status).toBeUndefined();
    const status = await d.custom.replaceNamespacedCustomObjectStatus({
      ...leases(), name: "st",
      body: { ...main, spec: { clientRef: { name: "mallory" } }, metadata: { ...main.metadata, labels: { sneaky: "yes" } }, status: { ended: false, exporterRef: { name: "e1" } } },
    });
    expect(status.status).toEqual({ ended: false, exporterRef: { name: "e1" } });
    expect(status.spec.clientRef.name).toBe("alice");
    expect(status.metadata.labels).toBeUndefined();
    expect(status.metadata.generation).toBe(1);
    const patched = await d.custom.patchNamespacedCustomObjectStatus({ ...leases(), name: "st", body: { status: { ended: true } } }, merge);
    expect(patched.status).toEqual({ ended: true, exporterRef: { name: "e1" } });
  });

  test("/status takes the resourceVersion precondition too", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("st-occ") });
    await d.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "st-occ", body: { ...v1, status: { ended: false } } });
    const stale = await failure(d.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "st-occ", body: { ...v1, status: { ended: true } } }));
    expect(stale.status.reason).toBe("Conflict");
  });

  test("changes() tells one object's story from the watch history, oldest first", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("story") });
    await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("other-story") });
    const v2 = await d.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "story", body: { ...v1, status: { ended: true } } });
    await d.custom.deleteNamespacedCustomObject({ ...leases(), name: "story" });
    const story = d.api.changes(`leases.${GROUP}`, "lab", "story");
    expect(story.map((c) => [c.type, c.rv, c.object.status?.ended])).toEqual([
      ["ADDED", Number(v1.metadata.resourceVersion), undefined],
      ["MODIFIED", Number(v2.metadata.resourceVersion), true],
      ["DELETED", expect.any(Number), true],
    ]);
    expect(d.api.changes(`leases.${GROUP}`, "elsewhere", "story")).toEqual([]);
  });
});

describe("patch", () => {
  test("merge patch merges maps and deletes with null", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody("mp"), metadata: { name: "mp", labels: { a: "1", b: "2" } } } });
    const p = await d.custom.patchNamespacedCustomObject({ ...leases(), name: "mp", body: { metadata: { labels: { a: null, c: "3" } } } }, merge);
    expect(p.metadata.labels).toEqual({ b: "2", c: "3" });
  });

  test("JSON patch applies its operations; a failed test operation changes nothing", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody("jp"), metadata: { name: "jp", finalizers: ["x/y", "x/z"] } } });
    const p = await d.custom.patchNamespacedCustomObject({ ...leases(), name: "jp", body: [{ op: "remove", path: "/metadata/finalizers/0" }, { op: "add", path: "/spec/tags", value: { k: "v" } }] }, jsonPatch);
    expect(p.metadata.finalizers).toEqual(["x/z"]);
    expect(p.spec.tags).toEqual({ k: "v" });
    const failed = await failure(d.custom.patchNamespacedCustomObject({ ...leases(), name: "jp", body: [{ op: "replace", path: "/spec/duration", value: "1h" }, { op: "test", path: "/metadata/resourceVersion", value: v1.metadata.resourceVersion }] }, jsonPatch));
    expect(failed.code).toBe(422);
    expect((await d.custom.getNamespacedCustomObject({ ...leases(), name: "jp" })).spec.duration).toBeUndefined();
  });

  test("a patch carrying a stale resourceVersion is a Conflict", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("mp-occ") });
    await d.custom.patchNamespacedCustomObject({ ...leases(), name: "mp-occ", body: { spec: { release: true } } }, merge);
    const stale = await failure(d.custom.patchNamespacedCustomObject({ ...leases(), name: "mp-occ", body: { metadata: { resourceVersion: v1.metadata.resourceVersion }, spec: { duration: "5m" } } }, merge));
    expect(stale.code).toBe(409);
  });

  test("strategic merge patch on a custom resource is 415, as the real server answers", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("smp") });
    const r = await failure(d.custom.patchNamespacedCustomObject({ ...leases(), name: "smp", body: { spec: { release: true } } }, k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch)));
    expect(r.code).toBe(415);
    expect(r.status.reason).toBe("UnsupportedMediaType");
  });
});

describe("the CRD's schema", () => {
  const exporters = { group: GROUP, version: VERSION, namespace: "schema", plural: "exporters" };

  test("fields the schema does not know are dropped silently, as on a cluster; defaults are filled in", async () => {
    const e = await d.custom.createNamespacedCustomObject({ ...exporters, body: { apiVersion: `${GROUP}/${VERSION}`, kind: "Exporter", metadata: { name: "e1" }, spec: { username: "u", notInSchema: 1 }, extra: true } });
    expect(e.spec).toEqual({ username: "u", enabled: true });
    expect(e.extra).toBeUndefined();
    const s = await d.custom.patchNamespacedCustomObjectStatus({ ...exporters, name: "e1", body: { status: { exporterStatus: "Available", devices: [{ uuid: "1", labels: { a: "b" }, junk: 2 }], junk: 3 } } }, merge);
    expect(s.status).toEqual({ exporterStatus: "Available", devices: [{ uuid: "1", labels: { a: "b" } }] });
  });

  test("a wrong type, a value outside an enum or a missing required field is 422 naming the field", async () => {
    const wrongType = await failure(d.custom.createNamespacedCustomObject({ ...leases("schema"), body: { ...leaseBody("t"), spec: { ...leaseBody("t").spec, duration: 3600 } } }));
    expect(wrongType.code).toBe(422);
    expect(wrongType.status.message).toBe('Lease.jumpstarter.dev "t" is invalid: spec.duration: Invalid value: "integer": spec.duration in body must be of type string: "integer"');
    expect(wrongType.status.details.causes).toEqual([{ reason: "FieldValueInvalid", field: "spec.duration", message: 'Invalid value: "integer": spec.duration in body must be of type string: "integer"' }]);
    const required = await failure(d.custom.createNamespacedCustomObject({ ...leases("schema"), body: { ...leaseBody("r"), spec: { selector: {} } } }));
    expect(required.status.message).toBe('Lease.jumpstarter.dev "r" is invalid: spec.clientRef: Required value');
    await d.custom.createNamespacedCustomObject({ ...exporters, body: { apiVersion: `${GROUP}/${VERSION}`, kind: "Exporter", metadata: { name: "e2" }, spec: {} } });
    const badEnum = await failure(d.custom.patchNamespacedCustomObjectStatus({ ...exporters, name: "e2", body: { status: { exporterStatus: "Sleeping" } } }, merge));
    expect(badEnum.status.message).toContain('status.exporterStatus: Unsupported value: "Sleeping": supported values: "Unspecified", "Offline", "Available"');
    await d.custom.createNamespacedCustomObject({ ...leases("schema"), body: leaseBody("st") });
    const noEnded = await failure(d.custom.patchNamespacedCustomObjectStatus({ ...leases("schema"), name: "st", body: { status: { exporterRef: { name: "e2" } } } }, merge));
    expect(noEnded.status.message).toBe('Lease.jumpstarter.dev "st" is invalid: status.ended: Required value');
    // A refused write takes no resourceVersion.
    const before = d.api.resourceVersion();
    await failure(d.custom.createNamespacedCustomObject({ ...leases("schema"), body: { ...leaseBody("t2"), spec: { clientRef: { name: 5 }, selector: {} } } }));
    expect(d.api.resourceVersion()).toBe(before);
  });
});

describe("delete and finalizers", () => {
  test("delete without finalizers removes the object", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("del") });
    const r = await d.custom.deleteNamespacedCustomObject({ ...leases(), name: "del" });
    expect(r).toMatchObject({ kind: "Status", status: "Success", details: { name: "del" } });
    expect((await failure(d.custom.getNamespacedCustomObject({ ...leases(), name: "del" }))).code).toBe(404);
    expect((await failure(d.custom.deleteNamespacedCustomObject({ ...leases(), name: "del" }))).code).toBe(404);
  });

  test("delete with finalizers only marks deletionTimestamp; removing the last finalizer deletes", async () => {
    await d.custom.createNamespacedCustomObject({ ...leases(), body: { ...leaseBody("fin"), metadata: { name: "fin", finalizers: ["jumpstarter.dev/a", "jumpstarter.dev/b"] } } });
    const marked = await d.custom.deleteNamespacedCustomObject({ ...leases(), name: "fin" });
    expect(marked.metadata.deletionTimestamp).toBeString();
    const again = await d.custom.deleteNamespacedCustomObject({ ...leases(), name: "fin" });
    expect(again.metadata.resourceVersion).toBe(marked.metadata.resourceVersion);
    const addMore = await failure(d.custom.patchNamespacedCustomObject({ ...leases(), name: "fin", body: { metadata: { finalizers: ["jumpstarter.dev/a", "jumpstarter.dev/b", "jumpstarter.dev/c"] } } }, merge));
    expect(addMore.status.message).toContain("no new finalizers can be added if the object is being deleted");
    const one = await d.custom.patchNamespacedCustomObject({ ...leases(), name: "fin", body: { metadata: { finalizers: ["jumpstarter.dev/b"] } } }, merge);
    expect(one.metadata.deletionTimestamp).toBe(marked.metadata.deletionTimestamp);
    await d.custom.patchNamespacedCustomObject({ ...leases(), name: "fin", body: { metadata: { finalizers: null } } }, merge);
    expect((await failure(d.custom.getNamespacedCustomObject({ ...leases(), name: "fin" }))).code).toBe(404);
  });

  test("a delete precondition on a stale resourceVersion is a Conflict", async () => {
    const v1 = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("del-occ") });
    await d.custom.patchNamespacedCustomObject({ ...leases(), name: "del-occ", body: { spec: { release: true } } }, merge);
    const r = await failure(d.custom.deleteNamespacedCustomObject({ ...leases(), name: "del-occ", body: { preconditions: { resourceVersion: v1.metadata.resourceVersion } } }));
    expect(r.code).toBe(409);
    expect(r.status.message).toContain("Precondition failed: ResourceVersion in precondition");
  });
});

describe("selectors on list", () => {
  test("labelSelector: =, ==, !=, in, notin, exists, !key; fieldSelector: metadata.name", async () => {
    const ns = "sel";
    const mk = (name: string, labels: Record<string, string>) => d.custom.createNamespacedCustomObject({ ...leases(ns), body: { ...leaseBody(name), metadata: { name, labels } } });
    await mk("a", { board: "rpi4", site: "x" });
    await mk("b", { board: "rpi5", site: "y" });
    await mk("c", { board: "qemu" });
    const names = async (q: { labelSelector?: string; fieldSelector?: string }) =>
      (await d.custom.listNamespacedCustomObject({ ...leases(ns), ...q })).items.map((i: any) => i.metadata.name);
    expect(await names({ labelSelector: "board=rpi4" })).toEqual(["a"]);
    expect(await names({ labelSelector: "board==rpi5" })).toEqual(["b"]);
    expect(await names({ labelSelector: "site!=x" })).toEqual(["b", "c"]);
    expect(await names({ labelSelector: "board in (rpi4, qemu)" })).toEqual(["a", "c"]);
    expect(await names({ labelSelector: "site notin (y)" })).toEqual(["a", "c"]);
    expect(await names({ labelSelector: "site" })).toEqual(["a", "b"]);
    expect(await names({ labelSelector: "!site" })).toEqual(["c"]);
    expect(await names({ labelSelector: "site,board=rpi5" })).toEqual(["b"]);
    expect(await names({ fieldSelector: "metadata.name=c" })).toEqual(["c"]);
    expect(await names({ fieldSelector: "metadata.name!=c,metadata.namespace=sel" })).toEqual(["a", "b"]);
    const bad = await failure(d.custom.listNamespacedCustomObject({ ...leases(ns), fieldSelector: "spec.duration=1h" }));
    expect(bad.code).toBe(400);
    expect(bad.status.message).toBe("field label not supported: spec.duration");
  });

  test("a list carries the resourceVersion it was read at", async () => {
    const created = await d.custom.createNamespacedCustomObject({ ...leases("rvl"), body: leaseBody("one") });
    const list = await d.custom.listNamespacedCustomObject({ ...leases("rvl") });
    expect(list.kind).toBe("LeaseList");
    expect(list.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });
});

describe("built-in kinds", () => {
  test("coordination.k8s.io/v1 Lease for leader election: create, conflict on a stale renew", async () => {
    const body = { metadata: { name: "jumpstarter-controller" }, spec: { holderIdentity: "pod-a", leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime().toISOString() as unknown as Date } };
    const l = await d.coordination.createNamespacedLease({ namespace: "lab", body: body as k8s.V1Lease });
    expect(l.spec!.holderIdentity).toBe("pod-a");
    await d.coordination.replaceNamespacedLease({ namespace: "lab", name: "jumpstarter-controller", body: { ...l, spec: { ...l.spec, holderIdentity: "pod-b" } } });
    const stale = await failure(d.coordination.replaceNamespacedLease({ namespace: "lab", name: "jumpstarter-controller", body: { ...l, spec: { ...l.spec, holderIdentity: "pod-c" } } }));
    expect(stale.status.message).toBe('Operation cannot be fulfilled on leases.coordination.k8s.io "jumpstarter-controller": the object has been modified; please apply your changes to the latest version and try again');
    expect((await d.coordination.readNamespacedLease({ namespace: "lab", name: "jumpstarter-controller" })).spec!.holderIdentity).toBe("pod-b");
  });

  test("v1 Secret: data is base64, stringData folds into data, bad base64 is refused", async () => {
    const s = await d.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "keys" }, data: { a: Buffer.from("alpha").toString("base64") }, stringData: { b: "beta" } } });
    expect(s.data).toEqual({ a: "YWxwaGE=", b: "YmV0YQ==" });
    expect(s.type).toBe("Opaque");
    expect((s as Record<string, unknown>).stringData).toBeUndefined();
    const bad = await failure(d.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "bad" }, data: { a: "not base64!" } } }));
    expect(bad.code).toBe(400);
    const missing = await failure(d.core.readNamespacedSecret({ namespace: "lab", name: "nope" }));
    expect(missing.status.message).toBe('secrets "nope" not found');
  });
});

describe("discovery and CRDs", () => {
  test("the group lists the installed kinds with their /status", async () => {
    const res = await fetch(`${d.api.url}/apis/${GROUP}/${VERSION}`, { headers: { authorization: `Bearer ${d.api.token}` }, tls: { ca: d.api.caPem } });
    const list = (await res.json()) as { resources: { name: string; kind: string; namespaced: boolean }[] };
    expect(list.resources.map((r) => r.name).sort()).toEqual(["clients", "clients/status", "exporteraccesspolicies", "exporteraccesspolicies/status", "exporters", "exporters/status", "leases", "leases/status"]);
    expect(list.resources.find((r) => r.name === "leases")).toMatchObject({ kind: "Lease", namespaced: true });
    const apis = await d.kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    expect(apis.groups.map((g) => g.name)).toContain(GROUP);
    const group = await d.kc.makeApiClient(k8s.CoordinationApi).getAPIGroup();
    expect(group.preferredVersion?.groupVersion).toBe("coordination.k8s.io/v1");
  });

  test("a kind whose CRD is not installed answers 404, and discovery leaves it out", async () => {
    const { readFileSync } = await import("node:fs");
    const { CRD_DIR } = await import("./server.ts");
    const only = await startDouble({ crds: [readFileSync(`${CRD_DIR}/jumpstarter.dev_leases.yaml`, "utf8")] });
    try {
      const r = await failure(only.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: "lab", plural: "exporters" }));
      expect(r.code).toBe(404);
      expect(r.status.message).toBe("the server could not find the requested resource");
      const res = await fetch(`${only.api.url}/apis/${GROUP}/${VERSION}`, { headers: { authorization: `Bearer ${only.api.token}` }, tls: { ca: only.api.caPem } });
      expect(((await res.json()) as { resources: { name: string }[] }).resources.map((x) => x.name)).toEqual(["leases", "leases/status"]);
      const none = await startDouble({ crds: [] });
      try {
        const gone = await fetch(`${none.api.url}/apis/${GROUP}/${VERSION}`, { headers: { authorization: `Bearer ${none.api.token}` }, tls: { ca: none.api.caPem } });
        expect(gone.status).toBe(404);
      } finally {
        await none.api.close();
      }
    } finally {
      await only.api.close();
    }
  });
});
