/**
 * What a pending lease should become, given the exporters of its namespace: the pure
 * half of scheduling (queue.ts runs it over the pending leases in `seq` order inside
 * one write transaction and applies the decisions), plus condition helpers.
 */
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { matches, parseSelector, type Selector } from "../common/selector.ts";
import { leaseExpiresAt } from "./lease-rules.ts";
import type { Condition, ConditionType, ExporterRecord, Lease } from "./model.ts";

export type PendingReason = "Scheduled" | "Offline" | "NotAvailable" | "NotReady" | "Unhealthy";
export type UnsatisfiableReason = "NoAccess" | "ExporterNotFound" | "SelectorMismatch" | "ExporterDisabled" | "AllDisabled";

export type Decision =
  | { kind: "assign"; exporter: string; index?: number }
  | { kind: "pending"; reason: PendingReason; message: string }
  | { kind: "unsatisfiable"; reason: UnsatisfiableReason; message: string }
  | { kind: "invalid"; reason: "InvalidSelector"; message: string }
  /** Its fixed window closed before any exporter was free. */
  | { kind: "expired" };

/** Upstream counts an unset status as ready, for exporters that never report one. */
function statusAcceptsLease(status: ExporterStatus): boolean {
  return status === ExporterStatus.AVAILABLE || status === ExporterStatus.UNSPECIFIED;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Its last health check failed and no admin has overridden that (ours, beyond upstream). */
function unhealthy(e: Readonly<ExporterRecord>): boolean {
  return e.health?.state === "unhealthy" && !e.health.overridden;
}

/** A health check is running: the exporter is between leases but not ready for one. */
function checking(e: Readonly<ExporterRecord>): boolean {
  return e.health?.state === "checking";
}

const disabledWhy = (e: Readonly<ExporterRecord>) => (e.disabledReason ? ` (${e.disabledReason})` : "");

/** What the pass already knows, and what the access policies say, for `evaluatePending`. */
export interface PlacementOptions {
  /** Whether the access policies let this lease's client have the exporter; all, without one. */
  admitted?: (e: Readonly<ExporterRecord>) => boolean;
  /** Why the client may have none of these exporters, for the NoAccess condition. */
  refused?: (matching: readonly Readonly<ExporterRecord>[]) => string;
  /**
   * Exporters before this index are known to be unable to take a lease like this one
   * in this pass (an earlier one of the same kind looked at them): the search starts
   * here, so placing many like leases costs one walk over the exporters, not one each.
   */
  startAt?: number;
  /** Parsed selectors by text, shared across a pass. */
  selectors?: Map<string, Selector>;
}

/** Why a lease cannot be placed whatever the exporters: its selector, or its time window. */
export function timingDecision(lease: Lease, now: number, selectors?: Map<string, Selector>): Decision | undefined {
  try {
    const known = selectors?.get(lease.selector);
    if (!known) {
      const parsed = parseSelector(lease.selector);
      selectors?.set(lease.selector, parsed);
    }
  } catch (err) {
    return { kind: "invalid", reason: "InvalidSelector", message: (err as Error).message };
  }
  const end = leaseExpiresAt(lease);
  if (end !== undefined && end <= now) return { kind: "expired" };
  if (lease.beginTime !== undefined && lease.beginTime > now) {
    return { kind: "pending", reason: "Scheduled", message: `The lease is scheduled to begin at ${new Date(lease.beginTime).toISOString()}` };
  }
  return undefined;
}

/**
 * Follows upstream's reconciler step by step (pin or selector, enabled, registered and
 * online, not leased, status ready; then the first by name), except that `held` also
 * holds exporters promised to earlier leases in the same pass. `exporters` are
 * sorted by name. An assignment carries the exporter's index in `exporters`.
 */
export function evaluatePending(
  lease: Lease,
  exporters: readonly Readonly<ExporterRecord>[],
  isOnline: (e: Readonly<ExporterRecord>) => boolean,
  held: ReadonlySet<string>,
  now: number,
  opts: PlacementOptions = {},
): Decision {
  const timing = timingDecision(lease, now, opts.selectors);
  if (timing) return timing;
  return placementDecision(lease, opts.selectors?.get(lease.selector) ?? parseSelector(lease.selector), exporters, isOnline, held, opts);
}

/** `evaluatePending` once the lease's timing allows it to be placed now. */
export function placementDecision(
  lease: Lease,
  selector: Selector,
  exporters: readonly Readonly<ExporterRecord>[],
  isOnline: (e: Readonly<ExporterRecord>) => boolean,
  held: ReadonlySet<string>,
  opts: PlacementOptions = {},
): Decision {
  const admitted = opts.admitted ?? (() => true);
  const refused = opts.refused ?? (() => "");
  let candidates: Readonly<ExporterRecord>[];
  if (lease.exporterName !== undefined) {
    const pinned = exporters.find((e) => e.name === lease.exporterName);
    if (!pinned) {
      return { kind: "unsatisfiable", reason: "ExporterNotFound", message: `Requested exporter ${lease.exporterName} was not found` };
    }
    if (selector.requirements.length > 0 && !matches(selector, pinned.labels)) {
      return {
        kind: "unsatisfiable",
        reason: "SelectorMismatch",
        message: `Requested exporter ${pinned.name} does not match selector ${lease.selector}`,
      };
    }
    if (!admitted(pinned)) return { kind: "unsatisfiable", reason: "NoAccess", message: refused([pinned]) };
    if (!pinned.enabled && !lease.allowDisabled) {
      return {
        kind: "unsatisfiable",
        reason: "ExporterDisabled",
        message: `Requested exporter ${pinned.name} is disabled${disabledWhy(pinned)}; lease it with allow-disabled to investigate it`,
      };
    }
    candidates = [pinned];
  } else {
    // The usual case, and the only one that need not look at every exporter: the
    // first by name that can take the lease. Without one, all are looked at to say why.
    for (let i = opts.startAt ?? 0; i < exporters.length; i++) {
      const e = exporters[i]!;
      if (e.enabled && matches(selector, e.labels) && e.registered && !held.has(e.name) &&
        statusAcceptsLease(e.status) && !unhealthy(e) && !checking(e) && isOnline(e) && admitted(e)) {
        return { kind: "assign", exporter: e.name, index: i };
      }
    }
    const anyMatching = exporters.filter((e) => matches(selector, e.labels));
    if (anyMatching.length === 0) {
      return { kind: "unsatisfiable", reason: "NoAccess", message: `No exporter matches the selector ${lease.selector}` };
    }
    const matching = anyMatching.filter(admitted);
    if (matching.length === 0) return { kind: "unsatisfiable", reason: "NoAccess", message: refused(anyMatching) };
    candidates = matching.filter((e) => e.enabled);
    if (candidates.length === 0) {
      return {
        kind: "unsatisfiable",
        reason: "AllDisabled",
        message: `All ${plural(matching.length, "exporter")} matching the selector are disabled (e.g. ${matching[0]!.name}${matching[0]!.disabledReason ? `: ${matching[0]!.disabledReason}` : ""})`,
      };
    }
  }

  const online = candidates.filter((e) => e.registered && isOnline(e));
  if (online.length === 0) {
    return {
      kind: "pending",
      reason: "Offline",
      message: `None of the ${plural(candidates.length, "matching exporter")} (e.g. ${candidates[0]!.name}) is online`,
    };
  }
  const free = online.filter((e) => !held.has(e.name));
  if (free.length === 0) {
    return {
      kind: "pending",
      reason: "NotAvailable",
      message: online.length === 1
        ? `the only matching exporter (${online[0]!.name}) is leased`
        : `all ${online.length} matching exporters (e.g. ${online[0]!.name}) are leased`,
    };
  }
  // Investigating a board is what allow-disabled is for, whether an admin or its own check took it out.
  const healthy = lease.exporterName !== undefined && lease.allowDisabled ? free : free.filter((e) => !unhealthy(e));
  if (healthy.length === 0) {
    const e = free[0]!;
    return {
      kind: "pending",
      reason: "Unhealthy",
      message: free.length === 1
        ? `exporter ${e.name} failed its health check (${e.health!.message}); it takes leases again once a check passes or an admin enables it`
        : `all ${free.length} free matching exporters failed their health check (e.g. ${e.name}: ${e.health!.message})`,
    };
  }
  const ready = healthy.filter((e) => statusAcceptsLease(e.status) && !checking(e));
  if (ready.length === 0) {
    const inCheck = healthy.find(checking);
    return {
      kind: "pending",
      reason: "NotReady",
      message: inCheck
        ? `exporter ${inCheck.name} is running its health check`
        : `${plural(healthy.length, "free exporter")} (e.g. ${healthy[0]!.name}) not ready yet (still cleaning up after a lease)`,
    };
  }
  const first = ready.reduce((a, b) => (b.name < a.name ? b : a));
  return { kind: "assign", exporter: first.name };
}

/**
 * Sets a condition like Kubernetes' meta.SetStatusCondition: lastTransitionTime moves
 * only when the status flips; reason and message are always updated.
 */
export function setCondition(
  conditions: readonly Condition[],
  type: ConditionType,
  status: boolean,
  reason: string,
  message: string,
  now: number,
): Condition[] {
  const value = status ? "True" : "False";
  const old = conditions.find((c) => c.type === type);
  const next: Condition = {
    type,
    status: value,
    reason,
    message,
    lastTransitionTime: old && old.status === value ? old.lastTransitionTime : now,
  };
  return old ? conditions.map((c) => (c.type === type ? next : c)) : [...conditions, next];
}

export function removeCondition(conditions: readonly Condition[], type: ConditionType): Condition[] {
  return conditions.filter((c) => c.type !== type);
}
