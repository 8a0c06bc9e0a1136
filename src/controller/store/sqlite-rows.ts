/**
 * How the SQLite store's rows and model objects become one another: JSON columns for
 * labels, reports and conditions, 0/1 for booleans, NULL for what is unset.
 */
import { type AccessPolicy, parseAccessPolicy, POLICY_API_VERSION, POLICY_KIND } from "../../common/access-policy.ts";
import type { AuditAction, AuditEntry } from "../audit.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";

export type Row = Record<string, string | number | null>;

export const json = (v: unknown) => JSON.stringify(v);
export const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
export const nul = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

export function clientFromRow(r: Row): Client {
  return {
    namespace: r.namespace as string,
    name: r.name as string,
    uid: r.uid as string,
    labels: JSON.parse(r.labels as string),
    tokenId: r.token_id as string,
    createdAt: r.created_at as number,
  };
}

export function clientParams(c: Client): Row {
  return {
    namespace: c.namespace,
    name: c.name,
    uid: c.uid,
    labels: json(c.labels),
    token_id: c.tokenId,
    created_at: c.createdAt,
  };
}

/**
 * The JSON text of the nested values of cached exporters, which are frozen all the
 * way down (see sqlite-cache.ts). Most exporter writes change a status or a lease
 * and pass the cached labels and driver reports along unchanged: writing them then
 * takes the text from here, and the cache keeps the values it had, instead of
 * serializing and parsing them again (5% of the controller's work in a lease churn).
 */
const textOfFrozen = new WeakMap<object, string>();

/** Records that `value`, frozen all the way down, is the JSON `text`. */
export function rememberJson(value: object, text: string): void {
  textOfFrozen.set(value, text);
}

const jsonOf = (v: object) => textOfFrozen.get(v) ?? json(v);

/** `text` parsed, or `previous` when that is the remembered value of this very text. */
function parsedOr<T extends object>(text: string, previous: T | null | undefined): T {
  return previous && textOfFrozen.get(previous) === text ? previous : JSON.parse(text);
}

/** `previous`: the cached record of this exporter, whose nested values are reused where the text is theirs. */
export function exporterFromRow(r: Row, previous?: ExporterRecord): ExporterRecord {
  return {
    namespace: r.namespace as string,
    name: r.name as string,
    uid: r.uid as string,
    labels: parsedOr(r.labels as string, previous?.labels),
    enabled: r.enabled === 1,
    disabledReason: r.disabled_reason as string,
    health: r.health === null ? null : parsedOr(r.health as string, previous?.health),
    tokenId: r.token_id as string,
    devices: parsedOr(r.devices as string, previous?.devices),
    status: r.status as number,
    statusMessage: r.status_message as string,
    registered: r.registered === 1,
    lastSeen: r.last_seen as number | null,
    leaseName: r.lease_name as string | null,
    createdAt: r.created_at as number,
  };
}

export function exporterParams(e: ExporterRecord): Row {
  return {
    namespace: e.namespace,
    name: e.name,
    uid: e.uid,
    labels: jsonOf(e.labels),
    enabled: e.enabled ? 1 : 0,
    disabled_reason: e.disabledReason,
    health: e.health === null ? null : jsonOf(e.health),
    token_id: e.tokenId,
    devices: jsonOf(e.devices),
    status: e.status,
    status_message: e.statusMessage,
    registered: e.registered ? 1 : 0,
    last_seen: e.lastSeen,
    lease_name: e.leaseName,
    created_at: e.createdAt,
  };
}

export function leaseFromRow(r: Row): Lease {
  return {
    seq: r.seq as number,
    namespace: r.namespace as string,
    name: r.name as string,
    client: r.client as string,
    selector: r.selector as string,
    exporterName: opt(r.exporter_name as string | null),
    duration: opt(r.duration as number | null),
    beginTime: opt(r.begin_time as number | null),
    endTime: opt(r.end_time as number | null),
    allowDisabled: r.allow_disabled === 1,
    tags: JSON.parse(r.tags as string),
    context: JSON.parse(r.context as string),
    exporter: opt(r.exporter as string | null),
    effectiveBeginTime: opt(r.effective_begin_time as number | null),
    effectiveEndTime: opt(r.effective_end_time as number | null),
    released: r.released === 1,
    ended: r.ended === 1,
    conditions: JSON.parse(r.conditions as string),
    createdAt: r.created_at as number,
    presenceTimeout: opt(r.presence_timeout as number | null),
    dialedAt: opt(r.dialed_at as number | null),
    priority: opt(r.priority as number | null),
    spotAccess: r.spot_access === 1 ? true : undefined,
  };
}

export function leaseParams(l: Omit<Lease, "seq">): Row {
  return {
    namespace: l.namespace,
    name: l.name,
    client: l.client,
    selector: l.selector,
    exporter_name: nul(l.exporterName),
    duration: nul(l.duration),
    begin_time: nul(l.beginTime),
    end_time: nul(l.endTime),
    allow_disabled: l.allowDisabled ? 1 : 0,
    tags: json(l.tags),
    context: json(l.context),
    exporter: nul(l.exporter),
    effective_begin_time: nul(l.effectiveBeginTime),
    effective_end_time: nul(l.effectiveEndTime),
    released: l.released ? 1 : 0,
    ended: l.ended ? 1 : 0,
    conditions: json(l.conditions),
    created_at: l.createdAt,
    presence_timeout: nul(l.presenceTimeout),
    dialed_at: nul(l.dialedAt),
    priority: nul(l.priority),
    spot_access: l.spotAccess ? 1 : 0,
  };
}

/** Stored as upstream's spec, so it is read back with the same checks an applied file gets. */
export function policyFromRow(r: Row): AccessPolicy {
  const document = { apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, metadata: { name: r.name }, spec: JSON.parse(r.spec as string) };
  return parseAccessPolicy(document, r.namespace as string);
}

export function auditFromRow(r: Row): AuditEntry {
  const entry: AuditEntry = {
    seq: r.seq as number, at: r.at as number, namespace: r.namespace as string, action: r.action as AuditAction,
    actor: r.actor as string, reason: r.reason as string, detail: r.detail as string,
  };
  if (r.lease !== null) entry.lease = r.lease as string;
  if (r.client !== null) entry.client = r.client as string;
  if (r.exporter !== null) entry.exporter = r.exporter as string;
  return entry;
}
