/**
 * Our model ↔ upstream's custom resources (group jumpstarter.dev, v1alpha1; field names
 * from upstream's controller/api/v1alpha1 Go types). What upstream has a field for goes
 * there, so `kubectl get leases.jumpstarter.dev -o yaml` and upstream's controller read
 * it; what upstream lacks, or keeps only to the second, goes into `jmp.jumpstarter.dev/*`
 * annotations. An annotation's value is used only while it agrees with the upstream
 * field it refines (the same second, the same selector), so an object edited with
 * kubectl reads as edited. Writing starts from the stored object, so fields we do not
 * know (finalizers, owner references, other annotations, upstream's conditions) stay.
 */
import { ExporterStatus } from "../../../gen/jumpstarter/v1/common_pb.ts";
import {
  formatSelector,
  fromLabelSelector,
  parseSelector,
  toLabelSelector,
} from "../../../common/selector.ts";
import type { LabelSelector } from "../../../gen/jumpstarter/v1/kubernetes_pb.ts";
import type { Client, Condition, DeviceReport, ExporterRecord, HealthRecord, Lease } from "../../model.ts";
import { GROUP, type KubeObject, VERSION } from "./api.ts";

export const ANNOTATION = "jmp.jumpstarter.dev/";
const A = {
  uid: `${ANNOTATION}uid`,
  tokenId: `${ANNOTATION}token-id`,
  createdAt: `${ANNOTATION}created-at`,
  disabledReason: `${ANNOTATION}disabled-reason`,
  health: `${ANNOTATION}health`,
  devices: `${ANNOTATION}devices`,
  selector: `${ANNOTATION}selector`,
  times: `${ANNOTATION}times`,
  presenceTimeout: `${ANNOTATION}presence-timeout`,
  dialedAt: `${ANNOTATION}dialed-at`,
};
/** Upstream's label on ended leases (LeaseLabelEnded). */
export const LEASE_ENDED_LABEL = "jumpstarter.dev/lease-ended";

// ---- small codecs ----

/** metav1.Time: RFC 3339 to the second. */
export const toTime = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.000Z$/, "Z");
export const fromTime = (text: unknown): number | undefined => {
  if (typeof text !== "string" || !text) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
};

/** A precise value (ms) kept in an annotation, used while it is within the same second as the upstream field. */
const refine = (upstream: number | undefined, precise: number | undefined): number | undefined =>
  upstream === undefined ? undefined : precise !== undefined && Math.floor(precise / 1000) === Math.floor(upstream / 1000) ? precise : upstream;

/** metav1.Duration as Go prints it: "1h30m0s", "1.5s", "0s". */
export function toGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = (rest / 1000).toString();
  if (h === 0 && m === 0 && rest < 1000) return `${sign}${rest}ms`;
  return `${sign}${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${s}s`;
}

const GO_UNITS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, "µs": 0.001, ns: 0.000001 };

export function fromGoDuration(text: unknown): number | undefined {
  if (typeof text !== "string" || !/^-?(\d+(\.\d*)?(h|m|s|ms|us|µs|ns))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d*)?)(ms|us|µs|ns|h|m|s)/g)) total += Number(n) * GO_UNITS[unit!]!;
  return Math.round(text.startsWith("-") ? -total : total);
}

const EXPORTER_STATUS: Record<ExporterStatus, string> = {
  [ExporterStatus.UNSPECIFIED]: "Unspecified",
  [ExporterStatus.OFFLINE]: "Offline",
  [ExporterStatus.AVAILABLE]: "Available",
  [ExporterStatus.BEFORE_LEASE_HOOK]: "BeforeLeaseHook",
  [ExporterStatus.LEASE_READY]: "LeaseReady",
  [ExporterStatus.AFTER_LEASE_HOOK]: "AfterLeaseHook",
  [ExporterStatus.BEFORE_LEASE_HOOK_FAILED]: "BeforeLeaseHookFailed",
  [ExporterStatus.AFTER_LEASE_HOOK_FAILED]: "AfterLeaseHookFailed",
};
const EXPORTER_STATUS_BY_NAME = new Map(Object.entries(EXPORTER_STATUS).map(([k, v]) => [v, Number(k) as ExporterStatus]));

function json<T>(text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

const num = (text: string | undefined): number | undefined => (text !== undefined && /^-?\d+$/.test(text) ? Number(text) : undefined);

/** Sets or removes an annotation. */
function annotate(obj: KubeObject, key: string, value: string | undefined): void {
  const annotations = (obj.metadata.annotations ??= {});
  if (value === undefined) delete annotations[key];
  else annotations[key] = value;
}

/**
 * The object to write: `from` (the stored one, shared with the informer's cache) copied
 * as deep as the converters write, which is the keys of metadata's labels and
 * annotations, of spec and of status. Deeper values (conditions, managedFields, what
 * another tool added) are shared, and replaced, never changed, when they change. A
 * structuredClone of the whole object was a tenth of the controller's work.
 */
function base(kind: string, namespace: string, name: string, from?: KubeObject): KubeObject {
  if (!from) return { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name, namespace }, spec: {}, status: {} };
  const { labels, annotations } = from.metadata;
  return {
    ...from,
    metadata: { ...from.metadata, ...(labels && { labels: { ...labels } }), ...(annotations && { annotations: { ...annotations } }) },
    spec: { ...from.spec },
    status: { ...from.status },
  };
}

function labelsOf(obj: KubeObject): Record<string, string> {
  return { ...obj.metadata.labels };
}

/** The creator's clock in ms when it was ours (nobody edits a creation time), else the API server's creationTimestamp. */
function createdAtOf(obj: KubeObject): number {
  return num(obj.metadata.annotations?.[A.createdAt]) ?? fromTime(obj.metadata.creationTimestamp) ?? 0;
}

// ---- Client ----

export function clientFromObject(obj: KubeObject): Client {
  const a = obj.metadata.annotations ?? {};
  return {
    namespace: obj.metadata.namespace!,
    name: obj.metadata.name,
    uid: a[A.uid] ?? obj.metadata.uid ?? "",
    labels: labelsOf(obj),
    tokenId: a[A.tokenId] ?? "",
    createdAt: createdAtOf(obj),
  };
}

export function clientToObject(c: Client, from?: KubeObject): KubeObject {
  const obj = base("Client", c.namespace, c.name, from);
  obj.metadata.labels = { ...c.labels };
  annotate(obj, A.uid, c.uid);
  annotate(obj, A.tokenId, c.tokenId);
  annotate(obj, A.createdAt, String(c.createdAt));
  return obj;
}

// ---- Exporter ----

interface UpstreamDevice {
  uuid?: string;
  parent_uuid?: string;
  labels?: Record<string, string>;
}

function conditionsOf(obj: KubeObject): { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[] {
  const c = obj.status?.conditions;
  return Array.isArray(c) ? (c as ReturnType<typeof conditionsOf>) : [];
}

/**
 * `leaseName` is filled in by the store (from status.leaseRef, checked against the
 * leases), since only it sees the leases too.
 */
export function exporterFromObject(obj: KubeObject): ExporterRecord {
  const a = obj.metadata.annotations ?? {};
  const s = obj.status ?? {};
  const upstreamDevices = Array.isArray(s.devices) ? (s.devices as UpstreamDevice[]) : [];
  const ours = json<DeviceReport[]>(a[A.devices]);
  // Ours carry descriptions; used while they describe the same devices as upstream's field.
  const devices: DeviceReport[] = ours && ours.length === upstreamDevices.length && ours.every((d, i) => d.uuid === upstreamDevices[i]?.uuid)
    ? ours
    : upstreamDevices.map((d) => ({
      uuid: d.uuid ?? "",
      ...(d.parent_uuid ? { parentUuid: d.parent_uuid } : {}),
      labels: { ...d.labels },
      methodsDescription: {},
    }));
  const enabled = (obj.spec?.enabled as boolean | undefined) ?? true;
  const registered = conditionsOf(obj).find((c) => c.type === "Registered")?.status === "True";
  return {
    namespace: obj.metadata.namespace!,
    name: obj.metadata.name,
    uid: a[A.uid] ?? obj.metadata.uid ?? "",
    labels: labelsOf(obj),
    enabled,
    disabledReason: enabled ? "" : (a[A.disabledReason] ?? ""),
    health: json<HealthRecord>(a[A.health]) ?? null,
    tokenId: a[A.tokenId] ?? "",
    devices,
    status: EXPORTER_STATUS_BY_NAME.get(String(s.exporterStatus ?? "")) ?? ExporterStatus.UNSPECIFIED,
    statusMessage: typeof s.statusMessage === "string" ? s.statusMessage : "",
    registered,
    lastSeen: fromTime(s.lastSeen) ?? null,
    leaseName: (s.leaseRef as { name?: string } | undefined)?.name || null,
    createdAt: createdAtOf(obj),
  };
}

/** Sets a condition's status; one that already says it is left as it is, in its place. */
function setCondition(obj: KubeObject, type: string, status: boolean, reason: string, message: string, now: number): void {
  const value = status ? "True" : "False";
  const list = conditionsOf(obj);
  const i = list.findIndex((c) => c.type === type);
  if (i >= 0 && list[i]!.status === value) return;
  const next = { type, status: value, reason, message, lastTransitionTime: toTime(now) };
  obj.status!.conditions = i >= 0 ? list.map((c, n) => (n === i ? next : c)) : [...list, next];
}

export function exporterToObject(e: ExporterRecord, from?: KubeObject, now = Date.now()): KubeObject {
  const obj = base("Exporter", e.namespace, e.name, from);
  obj.metadata.labels = { ...e.labels };
  obj.spec!.enabled = e.enabled;
  annotate(obj, A.uid, e.uid);
  annotate(obj, A.tokenId, e.tokenId);
  annotate(obj, A.createdAt, String(e.createdAt));
  annotate(obj, A.disabledReason, e.enabled || !e.disabledReason ? undefined : e.disabledReason);
  annotate(obj, A.health, e.health ? JSON.stringify(e.health) : undefined);
  const described = e.devices.some((d) => d.description !== undefined || Object.keys(d.methodsDescription).length > 0);
  annotate(obj, A.devices, described ? JSON.stringify(e.devices) : undefined);
  const s = obj.status!;
  s.devices = e.devices.map((d) => ({ uuid: d.uuid, ...(d.parentUuid ? { parent_uuid: d.parentUuid } : {}), labels: { ...d.labels } }));
  if (e.devices.length === 0) delete s.devices;
  s.exporterStatus = EXPORTER_STATUS[e.status] ?? "Unspecified";
  s.statusMessage = e.statusMessage;
  if (!e.statusMessage) delete s.statusMessage;
  if (e.lastSeen !== null) s.lastSeen = toTime(e.lastSeen);
  else delete s.lastSeen;
  if (e.leaseName) s.leaseRef = { name: e.leaseName };
  else delete s.leaseRef;
  const wasRegistered = conditionsOf(obj).find((c) => c.type === "Registered");
  if (e.registered || wasRegistered) {
    setCondition(obj, "Registered", e.registered, e.registered ? "Register" : "Unregister",
      e.registered ? "The exporter registered" : "The exporter unregistered", now);
  }
  return obj;
}

// ---- Lease ----

interface PreciseTimes {
  duration?: number;
  beginTime?: number;
  endTime?: number;
  effectiveBeginTime?: number;
  effectiveEndTime?: number;
  conditions?: Record<string, number>;
}

/** The upstream selector object (matchLabels, matchExpressions) of our selector text. */
export function selectorObject(text: string): { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } {
  if (!text) return {};
  const sel = toLabelSelector(parseSelector(text));
  const out: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } = {};
  if (Object.keys(sel.matchLabels).length) out.matchLabels = { ...sel.matchLabels };
  if (sel.matchExpressions.length) {
    out.matchExpressions = sel.matchExpressions.map((r) => ({ key: r.key, operator: r.operator, ...(r.values.length ? { values: [...r.values] } : {}) }));
  }
  return out;
}

function selectorText(spec: Record<string, unknown>, ours: string | undefined): string {
  const sel = (spec.selector ?? {}) as { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  const message = {
    matchLabels: sel.matchLabels ?? {},
    matchExpressions: (sel.matchExpressions ?? []).map((e) => ({ key: e.key, operator: e.operator, values: e.values ?? [] })),
  } as unknown as LabelSelector;
  let text: string;
  try {
    text = formatSelector(fromLabelSelector(message));
  } catch {
    // Not one we can evaluate: the scheduler marks the lease Invalid from the text.
    return JSON.stringify(spec.selector);
  }
  if (ours !== undefined) {
    try {
      if (JSON.stringify(selectorObject(ours)) === JSON.stringify(selectorObject(text))) return ours;
    } catch {
      // An annotation that no longer parses: upstream's field wins.
    }
  }
  return text;
}

export function leaseFromObject(obj: KubeObject): Lease {
  const a = obj.metadata.annotations ?? {};
  const spec = obj.spec ?? {};
  const s = obj.status ?? {};
  const t = json<PreciseTimes>(a[A.times]) ?? {};
  const ref = (v: unknown) => ((v as { name?: string } | undefined)?.name || undefined);
  const createdAt = createdAtOf(obj);
  const conditions: Condition[] = conditionsOf(obj).map((c) => ({
    type: c.type as Condition["type"],
    status: c.status === "True" ? "True" : "False",
    reason: c.reason,
    message: c.message,
    lastTransitionTime: refine(fromTime(c.lastTransitionTime), t.conditions?.[c.type]) ?? 0,
  }));
  const lease: Lease = {
    namespace: obj.metadata.namespace!,
    name: obj.metadata.name,
    client: ref(spec.clientRef) ?? "",
    selector: selectorText(spec, a[A.selector]),
    exporterName: ref(spec.exporterRef),
    duration: refine(fromGoDuration(spec.duration), t.duration),
    beginTime: refine(fromTime(spec.beginTime), t.beginTime),
    endTime: refine(fromTime(spec.endTime), t.endTime),
    allowDisabled: spec.allowDisabled === true,
    tags: { ...(spec.tags as Record<string, string> | undefined) },
    context: { ...(spec.context as Record<string, string> | undefined) },
    presenceTimeout: num(a[A.presenceTimeout]),
    exporter: ref(s.exporterRef),
    effectiveBeginTime: refine(fromTime(s.beginTime), t.effectiveBeginTime),
    effectiveEndTime: refine(fromTime(s.endTime), t.effectiveEndTime),
    released: spec.release === true,
    ended: s.ended === true,
    conditions,
    createdAt,
    // Creation order: the creator's clock in ms (ties are broken by name when listing).
    seq: createdAt,
    dialedAt: num(a[A.dialedAt]),
    priority: typeof s.priority === "number" ? s.priority : undefined,
    spotAccess: s.spotAccess === true ? true : undefined,
  };
  for (const k of Object.keys(lease) as (keyof Lease)[]) if (lease[k] === undefined) delete lease[k];
  return lease;
}

export function leaseToObject(l: Lease | Omit<Lease, "seq">, from?: KubeObject): KubeObject {
  const obj = base("Lease", l.namespace, l.name, from);
  const spec = obj.spec!;
  const set = (target: Record<string, unknown>, key: string, value: unknown) => {
    if (value === undefined) delete target[key];
    else target[key] = value;
  };
  // A value that means what the stored one means is left as it was written (upstream's
  // "1h" stays "1h", its matchExpressions keep their order), so an unchanged field is
  // never rewritten.
  const old = from ? leaseFromObject(from) : undefined;
  const keep = (key: string, same: boolean, value: unknown) => set(spec, key, same && from?.spec?.[key] !== undefined ? from.spec[key] : value);
  spec.clientRef = { name: l.client };
  keep("selector", old?.selector === l.selector, selectorObject(l.selector));
  set(spec, "exporterRef", l.exporterName ? { name: l.exporterName } : undefined);
  const second = (a?: number, b?: number) => a !== undefined && b !== undefined && Math.floor(a / 1000) === Math.floor(b / 1000);
  keep("duration", old?.duration === l.duration, l.duration !== undefined ? toGoDuration(l.duration) : undefined);
  keep("beginTime", second(old?.beginTime, l.beginTime), l.beginTime !== undefined ? toTime(l.beginTime) : undefined);
  keep("endTime", second(old?.endTime, l.endTime), l.endTime !== undefined ? toTime(l.endTime) : undefined);
  set(spec, "tags", Object.keys(l.tags).length ? { ...l.tags } : undefined);
  set(spec, "context", Object.keys(l.context).length ? { ...l.context } : undefined);
  set(spec, "allowDisabled", l.allowDisabled || undefined);
  set(spec, "release", l.released || undefined);
  const labels = (obj.metadata.labels ??= {});
  if (l.ended) labels[LEASE_ENDED_LABEL] = "true";
  else delete labels[LEASE_ENDED_LABEL];
  annotate(obj, A.selector, l.selector || undefined);
  annotate(obj, A.createdAt, String(l.createdAt));
  annotate(obj, A.presenceTimeout, l.presenceTimeout !== undefined ? String(l.presenceTimeout) : undefined);
  annotate(obj, A.dialedAt, l.dialedAt !== undefined ? String(l.dialedAt) : undefined);
  const times: PreciseTimes = {
    duration: l.duration, beginTime: l.beginTime, endTime: l.endTime,
    effectiveBeginTime: l.effectiveBeginTime, effectiveEndTime: l.effectiveEndTime,
    conditions: Object.fromEntries(l.conditions.map((c) => [c.type, c.lastTransitionTime])),
  };
  annotate(obj, A.times, JSON.stringify(times));
  const s = obj.status!;
  set(s, "exporterRef", l.exporter ? { name: l.exporter } : undefined);
  set(s, "beginTime", l.effectiveBeginTime !== undefined ? toTime(l.effectiveBeginTime) : undefined);
  set(s, "endTime", l.effectiveEndTime !== undefined ? toTime(l.effectiveEndTime) : undefined);
  s.ended = l.ended;
  set(s, "priority", l.priority);
  set(s, "spotAccess", l.spotAccess ? true : undefined);
  const before = from ? conditionsOf(from) : [];
  s.conditions = l.conditions.map((c) => {
    const lastTransitionTime = toTime(c.lastTransitionTime);
    // The stored condition when it says the same (it may carry observedGeneration).
    const same = before.find((o) => o.type === c.type && o.status === c.status && o.reason === c.reason && o.message === c.message &&
      o.lastTransitionTime === lastTransitionTime);
    return same ?? { type: c.type, status: c.status, reason: c.reason, message: c.message, lastTransitionTime };
  });
  if (l.conditions.length === 0) delete s.conditions;
  return obj;
}

/** The parts a PUT on the main resource carries (status is ignored there) and the /status part. */
export function mainPart(obj: KubeObject): string {
  return JSON.stringify({ labels: obj.metadata.labels ?? {}, annotations: obj.metadata.annotations ?? {}, spec: obj.spec ?? {} });
}

export function statusPart(obj: KubeObject): string {
  return JSON.stringify(obj.status ?? {});
}
