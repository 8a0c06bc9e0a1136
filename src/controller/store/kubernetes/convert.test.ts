/**
 * Conversion between our model and upstream's custom resources: objects as upstream's
 * controller writes them (field names from upstream's controller/api/v1alpha1) read
 * correctly, writing one back leaves upstream's fields as they were unless they changed,
 * and what we write carries upstream's fields for upstream's tools.
 */
import { expect, test } from "bun:test";
import { ExporterStatus } from "../../../gen/jumpstarter/v1/common_pb.ts";
import type { KubeObject } from "./api.ts";
import {
  exporterFromObject,
  exporterToObject,
  fromGoDuration,
  leaseFromObject,
  leaseToObject,
  mainPart,
  statusPart,
  toGoDuration,
} from "./convert.ts";

/** A Lease as upstream's controller leaves it once it assigned an exporter. */
const upstreamLease = (): KubeObject => ({
  apiVersion: "jumpstarter.dev/v1alpha1",
  kind: "Lease",
  metadata: {
    name: "lease-sample",
    namespace: "lab",
    uid: "6f1c",
    resourceVersion: "42",
    creationTimestamp: "2026-01-01T12:00:00Z",
    labels: { "app.kubernetes.io/name": "jumpstarter-router" },
    annotations: { "example.com/owner": "ops" },
    finalizers: ["example.com/keep"],
  },
  spec: {
    clientRef: { name: "client-sample" },
    duration: "1h",
    selector: { matchExpressions: [{ key: "rev", operator: "In", values: ["3", "2"] }], matchLabels: { dut: "fancy-hardware" } },
    tags: { ci: "nightly" },
  },
  status: {
    beginTime: "2026-01-01T12:00:01Z",
    exporterRef: { name: "exporter-sample" },
    ended: false,
    priority: 5,
    conditions: [
      { type: "Pending", status: "False", reason: "Ready", message: "", lastTransitionTime: "2026-01-01T12:00:01Z", observedGeneration: 1 },
      { type: "Ready", status: "True", reason: "Ready", message: "An exporter has been acquired for the client", lastTransitionTime: "2026-01-01T12:00:01Z", observedGeneration: 1 },
    ],
  },
});

test("an upstream Lease reads as ours", () => {
  const l = leaseFromObject(upstreamLease());
  expect(l).toMatchObject({
    namespace: "lab", name: "lease-sample", client: "client-sample", selector: "dut=fancy-hardware,rev in (3,2)",
    duration: 3_600_000, tags: { ci: "nightly" }, context: {}, allowDisabled: false, released: false, ended: false,
    exporter: "exporter-sample", effectiveBeginTime: Date.parse("2026-01-01T12:00:01Z"), createdAt: Date.parse("2026-01-01T12:00:00Z"),
  });
  expect(l.conditions.map((c) => `${c.type}=${c.status}`)).toEqual(["Pending=False", "Ready=True"]);
  expect(l.beginTime).toBeUndefined();
  expect(l.presenceTimeout).toBeUndefined();
});

test("writing an upstream Lease back unchanged changes none of upstream's fields; a release changes spec.release and status only", () => {
  const obj = upstreamLease();
  const same = leaseToObject(leaseFromObject(obj), obj);
  expect(same.spec).toEqual(obj.spec!);
  expect(same.status).toEqual(obj.status!);
  expect(same.metadata).toMatchObject({ finalizers: ["example.com/keep"], labels: obj.metadata.labels, uid: "6f1c", resourceVersion: "42" });
  expect(same.metadata.annotations!["example.com/owner"]).toBe("ops");

  const l = leaseFromObject(obj);
  const at = Date.parse("2026-01-01T12:30:00.250Z");
  Object.assign(l, { released: true, ended: true, effectiveEndTime: at });
  l.conditions = [...l.conditions.filter((c) => c.type !== "Ready"), { type: "Ready", status: "False", reason: "Released", message: "The lease was released", lastTransitionTime: at }];
  const released = leaseToObject(l, obj);
  expect(released.spec).toEqual({ ...obj.spec, release: true });
  expect(released.metadata.labels).toEqual({ ...obj.metadata.labels, "jumpstarter.dev/lease-ended": "true" });
  expect(released.status).toMatchObject({ ended: true, endTime: "2026-01-01T12:30:00Z", priority: 5, exporterRef: { name: "exporter-sample" } });
  expect((released.status!.conditions as { type: string; status: string }[]).map((c) => `${c.type}=${c.status}`)).toEqual(["Pending=False", "Ready=False"]);
  // Read back, the milliseconds upstream's fields lack come from our annotation.
  expect(leaseFromObject(released).effectiveEndTime).toBe(at);
});

test("a lease of ours written from scratch has upstream's fields; a selector with != reads back as written", () => {
  const obj = leaseToObject({
    namespace: "lab", name: "l1", client: "alice", selector: "board=rpi4,rev!=1", exporterName: "pi-1", duration: 90_500, beginTime: 1_767_268_800_123,
    allowDisabled: true, tags: {}, context: { build: "42" }, released: false, ended: false, conditions: [], createdAt: 1_767_268_799_000, presenceTimeout: 30_000,
  });
  expect(obj.spec).toEqual({
    clientRef: { name: "alice" }, selector: { matchLabels: { board: "rpi4" }, matchExpressions: [{ key: "rev", operator: "NotIn", values: ["1"] }] },
    exporterRef: { name: "pi-1" }, duration: "1m30.5s", beginTime: "2026-01-01T12:00:00Z", context: { build: "42" }, allowDisabled: true,
  });
  expect(obj.status).toEqual({ ended: false });
  expect(leaseFromObject(obj)).toMatchObject({ selector: "board=rpi4,rev!=1", beginTime: 1_767_268_800_123, duration: 90_500, presenceTimeout: 30_000 });
  // Edited with kubectl: upstream's field wins over our annotation.
  obj.spec!.selector = { matchLabels: { board: "qemu" } };
  obj.spec!.duration = "2h";
  expect(leaseFromObject(obj)).toMatchObject({ selector: "board=qemu", duration: 7_200_000 });
});

test("an upstream Exporter reads as ours; writing it back keeps its conditions and devices", () => {
  const obj: KubeObject = {
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "Exporter",
    metadata: { name: "exporter-sample", namespace: "lab", uid: "u-1", creationTimestamp: "2026-01-01T10:00:00Z", labels: { dut: "fancy-hardware" } },
    spec: { username: "system:serviceaccount:lab:exporter" },
    status: {
      conditions: [
        { type: "Registered", status: "True", reason: "Register", message: "", lastTransitionTime: "2026-01-01T10:00:05Z" },
        { type: "Online", status: "True", reason: "Seen", message: "", lastTransitionTime: "2026-01-01T10:00:05Z" },
      ],
      devices: [{ uuid: "d1", labels: { "jumpstarter.dev/name": "power" } }, { uuid: "d2", parent_uuid: "d1" }],
      exporterStatus: "Available",
      lastSeen: "2026-01-01T11:59:50Z",
      leaseRef: { name: "lease-sample" },
    },
  };
  const e = exporterFromObject(obj);
  expect(e).toMatchObject({
    name: "exporter-sample", uid: "u-1", labels: { dut: "fancy-hardware" }, enabled: true, disabledReason: "", health: null,
    tokenId: "", status: ExporterStatus.AVAILABLE, registered: true, lastSeen: Date.parse("2026-01-01T11:59:50Z"), leaseName: "lease-sample",
    devices: [{ uuid: "d1", labels: { "jumpstarter.dev/name": "power" }, methodsDescription: {} }, { uuid: "d2", parentUuid: "d1", labels: {}, methodsDescription: {} }],
  });
  const back = exporterToObject(e, obj);
  expect(back.spec).toEqual({ ...obj.spec, enabled: true });
  expect(back.status!.conditions).toEqual(obj.status!.conditions);
  expect(back.status!.devices).toEqual([{ uuid: "d1", labels: { "jumpstarter.dev/name": "power" } }, { uuid: "d2", parent_uuid: "d1", labels: {} }]);
  expect(statusPart(exporterToObject(exporterFromObject(back), back))).toBe(statusPart(back));
  expect(mainPart(exporterToObject(exporterFromObject(back), back))).toBe(mainPart(back));
  const disabled = exporterToObject({ ...e, enabled: false, disabledReason: "reflashing", status: ExporterStatus.OFFLINE }, obj);
  expect(disabled.spec!.enabled).toBe(false);
  expect(disabled.status!.exporterStatus).toBe("Offline");
  expect(exporterFromObject(disabled)).toMatchObject({ enabled: false, disabledReason: "reflashing" });
});

/** Frozen all the way down: a write into it throws (modules are strict). */
function deepFrozen<T>(v: T): T {
  if (v && typeof v === "object") {
    for (const x of Object.values(v)) deepFrozen(x);
    Object.freeze(v);
  }
  return v;
}

test("converting back leaves the stored object as it was: the informer's copy is shared, not cloned", () => {
  // Frozen as the informer's objects could be: any write into them throws.
  const lease = deepFrozen(upstreamLease());
  const before = JSON.stringify(lease);
  const l = leaseFromObject(lease);
  const at = Date.parse("2026-01-01T12:30:00Z");
  Object.assign(l, { released: true, ended: true, effectiveEndTime: at, tags: { ci: "weekly" }, presenceTimeout: 5_000 });
  l.conditions = [...l.conditions.filter((c) => c.type !== "Ready"), { type: "Ready", status: "False", reason: "Released", message: "", lastTransitionTime: at }];
  const written = leaseToObject(l, lease);
  expect(JSON.stringify(lease)).toBe(before);
  expect(written.metadata.labels!["jumpstarter.dev/lease-ended"]).toBe("true");
  expect(written.spec).toMatchObject({ release: true, tags: { ci: "weekly" } });
  expect(written.status).toMatchObject({ ended: true });

  const exporter = deepFrozen({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "Exporter",
    metadata: { name: "pi-1", namespace: "lab", uid: "u-1", creationTimestamp: "2026-01-01T10:00:00Z", labels: { board: "rpi4" }, annotations: { "example.com/x": "1" } },
    spec: { username: "u" },
    status: {
      conditions: [{ type: "Registered", status: "True", reason: "Register", message: "", lastTransitionTime: "2026-01-01T10:00:05Z" }],
      devices: [{ uuid: "d1", labels: { "jumpstarter.dev/name": "power" } }],
      exporterStatus: "Available", leaseRef: { name: "lease-sample" },
    },
  } as KubeObject);
  const was = JSON.stringify(exporter);
  const e = exporterFromObject(exporter);
  const changed = exporterToObject({ ...e, labels: { board: "rpi5" }, enabled: false, disabledReason: "reflashing", registered: false, leaseName: null, status: ExporterStatus.OFFLINE, health: null }, exporter);
  expect(JSON.stringify(exporter)).toBe(was);
  expect(changed.metadata.labels).toEqual({ board: "rpi5" });
  expect(changed.status).toMatchObject({ exporterStatus: "Offline" });
  expect(changed.status!.leaseRef).toBeUndefined();
  expect((changed.status!.conditions as { status: string }[])[0]!.status).toBe("False");
});

test("durations in Go's format, both ways", () => {
  expect([0, 500, 1000, 90_500, 3_600_000, 5_400_000, 86_400_000].map(toGoDuration)).toEqual(["0s", "500ms", "1s", "1m30.5s", "1h0m0s", "1h30m0s", "24h0m0s"]);
  expect(["1h", "30m", "1h30m0s", "1.5s", "250ms", "2h45m", "0s"].map(fromGoDuration)).toEqual([3_600_000, 1_800_000, 5_400_000, 1500, 250, 9_900_000, 0]);
  expect(fromGoDuration("ten minutes")).toBeUndefined();
});
