/**
 * The controller's objects, as plain JSON-able data. Times are epoch milliseconds,
 * durations milliseconds. Field meanings follow upstream's CRDs (upstream-protocol.md §4, §7).
 */
import type { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";

export type Labels = Record<string, string>;

export interface Client {
  namespace: string;
  name: string;
  /** Random; changes when an object of the same name is recreated. */
  uid: string;
  labels: Labels;
  /** Put into every token issued for this client; a token with another id is refused. */
  tokenId: string;
  createdAt: number;
}

/** One `DriverInstanceReport` of the exporter's driver tree, as sent in Register. */
export interface DeviceReport {
  uuid: string;
  parentUuid?: string;
  labels: Labels;
  description?: string;
  methodsDescription: Record<string, string>;
}

/**
 * Ours, not upstream's: the exporter's latest health check (hooks.healthCheck), as
 * it reported it. Unhealthy exporters get no new lease until a check passes or an
 * admin enables them. A Kubernetes store would keep it in an annotation.
 */
export interface HealthRecord {
  state: "checking" | "healthy" | "unhealthy";
  message: string;
  /** One run of the check; `overridden` applies to this run only. */
  checkId: string;
  /** When the run finished, by the exporter's clock (epoch ms); absent while checking. */
  checkedAt?: number;
  /** An admin enabled the exporter after this failure: it is scheduled as if healthy. */
  overridden: boolean;
}

/** What an exporter reports of a run of its health check (the controller adds `overridden`). */
export type HealthReport = Omit<HealthRecord, "overridden">;

/** An exporter as stored; `online` is derived from it and the open Status streams. */
export interface ExporterRecord {
  namespace: string;
  name: string;
  uid: string;
  labels: Labels;
  /** Disabled exporters get no lease unless one pins them with allowDisabled. */
  enabled: boolean;
  /** Why an admin disabled it (maintenance), shown to clients; empty while enabled. */
  disabledReason: string;
  /** Null for exporters that run no health check (and upstream's, which cannot say). */
  health: HealthRecord | null;
  tokenId: string;
  devices: DeviceReport[];
  status: ExporterStatus;
  statusMessage: string;
  /** True between Register and Unregister. */
  registered: boolean;
  lastSeen: number | null;
  /** The lease holding this exporter now, if any. */
  leaseName: string | null;
  createdAt: number;
}

export interface Exporter extends ExporterRecord {
  online: boolean;
}

export type ConditionType = "Ready" | "Pending" | "Unsatisfiable" | "Invalid";

export interface Condition {
  type: ConditionType;
  status: "True" | "False";
  reason: string;
  message: string;
  /** When `status` last changed. */
  lastTransitionTime: number;
}

export interface LeaseSpec {
  /** Label selector text (canonical form); empty when the lease only pins an exporter. */
  selector: string;
  /** Pin: only this exporter may be assigned. */
  exporterName?: string;
  duration?: number;
  /** Requested begin; the lease waits (Pending, Scheduled) until then. */
  beginTime?: number;
  /** Requested end; when set, the lease expires then. */
  endTime?: number;
  allowDisabled: boolean;
  tags: Labels;
  context: Labels;
  /**
   * Ours, not upstream's: the lease is given back when its client shows no sign of
   * life for this long (ms). Set by a client that stays connected while it holds
   * the lease (`jmp shell`), so a shell that dies does not keep the board.
   * Upstream's Lease resource has no such field: a Kubernetes store would keep it in
   * an annotation.
   */
  presenceTimeout?: number;
}

export interface Lease extends LeaseSpec {
  namespace: string;
  name: string;
  client: string;
  /** The assigned exporter; stays set after the lease ends, for history. */
  exporter?: string;
  effectiveBeginTime?: number;
  effectiveEndTime?: number;
  /** Someone asked for the lease to end. */
  released: boolean;
  /** Terminal: released, expired, unsatisfiable or invalid. */
  ended: boolean;
  conditions: Condition[];
  createdAt: number;
  /** Monotonic creation order; the pending queue is served in this order. */
  seq: number;
  /**
   * Ours: when a client first dialled the lease's exporter. A lease in use is kept
   * whatever its client's silence; one never dialled is given back when its client
   * goes silent (presenceTimeout), also after a controller restart, which is why
   * this is stored rather than kept in memory. A Kubernetes store would keep it
   * in an annotation, as presenceTimeout.
   */
  dialedAt?: number;
  /**
   * Upstream's status.priority and status.spotAccess: what the access policy that
   * granted the exporter said, set when the lease gets it. A spot lease is ended when
   * a lease with non-spot access needs its exporter.
   */
  priority?: number;
  spotAccess?: boolean;
}

/**
 * A copy of a lease its holder may change without touching the original: every nested
 * value a Lease has is copied (a field holding another object must be added here).
 * structuredClone does the same at several times the cost, and stores copy a lease on
 * every read.
 */
export function copyLease(l: Lease): Lease {
  return { ...l, tags: { ...l.tags }, context: { ...l.context }, conditions: l.conditions.map((c) => ({ ...c })) };
}

/** A client or exporter, named as upstream's `jumpstarter-kind` metadata does. */
export interface PrincipalRef {
  kind: "Client" | "Exporter";
  namespace: string;
  name: string;
}

/** What a client asks for in CreateLease (times in epoch ms, duration in ms). */
export interface LeaseRequest {
  selector?: string;
  exporterName?: string;
  duration?: number;
  beginTime?: number;
  endTime?: number;
  tags?: Labels;
  context?: Labels;
  allowDisabled?: boolean;
  /** See LeaseSpec.presenceTimeout. */
  presenceTimeout?: number;
}

export interface LeaseUpdate {
  duration?: number;
  beginTime?: number;
  endTime?: number;
  /** Transfers an active lease to another client of the same namespace. */
  client?: string;
}

export interface LeaseListOptions {
  client?: string;
  /** Default true: leave out ended leases. */
  onlyActive?: boolean;
  /** Selector over the lease's labels: its selector's `k=v` pairs and `metadata.jumpstarter.dev/<tag>`. */
  selector?: string;
  /** Selector over the lease's tags, keys without prefix (upstream's tag_filter). */
  tags?: string;
}
