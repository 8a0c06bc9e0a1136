/**
 * The scheduling pass and lease endings, applied inside the caller's write
 * transaction. The pass ends the leases past their expiry, then lets each pending
 * lease take the first free eligible exporter it matches, in the fair queue's order:
 * priority, then the client holding fewer, then age. Because earlier leases choose
 * first, a later one only gets an exporter that no earlier one could use.
 */
import { formatDuration } from "../common/duration.ts";
import { matches, parseSelector, type Selector } from "../common/selector.ts";
import type { Access } from "./access.ts";
import { CONTROLLER, endAction, endedByController } from "./audit.ts";
import { FairQueue, sharesOf } from "./fair-queue.ts";
import type { ExporterRecord, Lease } from "./model.ts";
import { leaseExpiresAt } from "./lease-rules.ts";
import { PassAccess } from "./pass-access.ts";
import { type Decision, type PlacementOptions, placementDecision, removeCondition, setCondition, timingDecision } from "./scheduler.ts";
import type { Store } from "./store/store.ts";
import type { StateTransaction } from "./transaction.ts";

/** What a pass needs from ControllerState: the store to read, the clock, who is online. */
export interface PassContext {
  readonly store: Store;
  now(): number;
  isOnline(exporter: Readonly<ExporterRecord>): boolean;
}

/** The Ready condition's message when a lease gets its exporter (upstream's words). */
export const ACQUIRED_MESSAGE = "An exporter has been acquired for the client";

/** Ends a lease with Ready False and `reason`, freeing its exporter. The caller serves the queue. */
export function endLease(ctx: PassContext, tx: StateTransaction, lease: Lease, reason: string, message: string): void {
  const now = ctx.now();
  lease.ended = true;
  lease.effectiveEndTime = now;
  lease.conditions = setCondition(removeCondition(lease.conditions, "Pending"), "Ready", false, reason, message, now);
  tx.audit({
    namespace: lease.namespace, action: endAction(reason), lease: lease.name, client: lease.client, exporter: lease.exporter,
    reason, detail: message, ...(endedByController(reason) ? { actor: CONTROLLER } : {}),
  });
  if (lease.exporter !== undefined) {
    const exporter = ctx.store.getExporter(lease.namespace, lease.exporter);
    if (exporter && exporter.leaseName === lease.name) {
      exporter.leaseName = null;
      tx.saveExporter(exporter);
    }
  }
  tx.saveLease(lease);
}

/** Ends a lease its client (or an admin, or another tool) released. */
export function endReleased(ctx: PassContext, tx: StateTransaction, lease: Lease): void {
  endLease(ctx, tx, lease, "Released", "The lease was released");
}

/**
 * One scheduling pass: ends what expired, then lets the pending leases choose in the
 * fair queue's order (fair-queue.ts), each taking the first free exporter it matches
 * and its client is admitted to (access.ts); a lease with non-spot access may end a
 * spot lease to take its exporter.
 */
export function serveNamespace(ctx: PassContext, tx: StateTransaction, namespace: string): void {
  const now = ctx.now();
  // The exporters are read only once a pending lease needs them: with thousands of
  // exporters that read is most of a pass, and most passes (status reports, a release
  // nobody waits for) find no pending lease. Read later, they already show the leases
  // this pass ended; `held` then tracks what the pass changes after the read.
  const active = ctx.store.listLeases(namespace, { onlyActive: true });
  const pending: Lease[] = [];
  for (const lease of active) {
    // Released but open: a Kubernetes release cut between its two writes (spec, then
    // status), or spec.release set by another tool, as upstream's clients do. Ending it
    // here, before repairHolds, keeps it from taking its exporter back.
    if (lease.released) {
      endReleased(ctx, tx, lease);
      continue;
    }
    if (lease.exporter === undefined) {
      pending.push(lease);
      continue;
    }
    const end = leaseExpiresAt(lease);
    if (end !== undefined && end <= now) endLease(ctx, tx, lease, "Expired", "The lease has expired");
  }
  repairHolds(ctx, tx, active);
  if (pending.length === 0) return;

  const exporters = ctx.store.scanExporters(namespace);
  const holds = ctx.store.heldExporters(namespace);
  const held = new Set<string>(holds.keys());
  // An exporter reserved for a lease whose own write never landed (a Kubernetes
  // assignment cut short: see store/kubernetes/store.ts) is free for that lease only.
  const reservedFor = new Map<string, string>();
  for (const [exporter, lease] of holds) reservedFor.set(lease, exporter);
  const access = new PassAccess(ctx.store, namespace);
  // Exporters held by spot leases: the only ones a non-spot lease may take over.
  const spotHeld = new Set(active.filter((l) => !l.ended && l.spotAccess && l.exporter !== undefined).map((l) => l.exporter!));
  const queue = new FairQueue(
    pending.map((lease) => ({ lease, priority: access.priority(lease, exporters) })),
    sharesOf(active.filter((l) => !l.ended)),
  );
  // Leases of one kind (selector, pin, allowDisabled, and client once policies tell
  // clients apart) get the same answer from the exporters, except that each one placed
  // holds one more: a kind remembers where its search got to, and a kind that found
  // nothing answers the next lease of that kind the same, until the pass frees an exporter.
  const selectors = new Map<string, Selector>();
  const kinds = new Map<string, { startAt: number; blocked?: Decision; freedAt: number }>();
  let freed = 0;
  for (let next = queue.next(); next; next = queue.next()) {
    const { lease } = next;
    let decision = timingDecision(lease, now, selectors);
    if (!decision) {
      const reserved = reservedFor.get(lease.name);
      const kindKey = `${lease.selector}\u0000${lease.exporterName ?? ""}\u0000${lease.allowDisabled}\u0000${access.accessClass(lease.client)}`;
      let kind = reserved === undefined ? kinds.get(kindKey) : undefined;
      if (kind && kind.freedAt !== freed) kind = undefined;
      if (reserved === undefined && !kind) kinds.set(kindKey, (kind = { startAt: 0, freedAt: freed }));
      let free: ReadonlySet<string> = held;
      if (reserved !== undefined && held.has(reserved)) {
        const mine = new Set(held);
        mine.delete(reserved);
        free = mine;
      }
      const opts: PlacementOptions = {
        admitted: (e) => access.of(lease.client, e) !== null,
        refused: (m) => access.refusal(lease.client, m),
        startAt: kind?.startAt,
        selectors,
      };
      const selector = selectors.get(lease.selector)!;
      decision = kind?.blocked ?? placementDecision(lease, selector, exporters, (e) => ctx.isOnline(e), free, opts);
      if (decision.kind === "pending" && decision.reason === "NotAvailable" && !access.open) {
        // Every exporter it could have is held: a spot lease on one gives way.
        const victim = spotHeld.size ? spotVictim(ctx, lease, exporters, access, spotHeld) : undefined;
        if (victim) {
          endLease(ctx, tx, victim.lease, "Preempted",
            `The lease was ended early: it had spot access to exporter ${victim.exporter}, which a lease with non-spot access (client ${lease.client}) needed`);
          held.delete(victim.exporter);
          spotHeld.delete(victim.exporter);
          freed++;
          decision = placementDecision(lease, selector, exporters, (e) => ctx.isOnline(e), held, { ...opts, startAt: 0 });
        }
      }
      if (kind && kind.freedAt === freed) {
        if (decision.kind === "assign" && decision.index !== undefined) kind.startAt = decision.index + 1;
        // Only a wait is passed on: a refusal ends the lease, and names its client.
        else if (decision.kind === "pending") kind.blocked = decision;
      }
    }
    switch (decision.kind) {
      case "assign": {
        const exporter = ctx.store.getExporter(namespace, decision.exporter)!;
        exporter.leaseName = lease.name;
        tx.saveExporter(exporter);
        held.add(exporter.name);
        queue.placed(lease.client, now);
        const granted = access.of(lease.client, exporter)!;
        lease.exporter = exporter.name;
        lease.effectiveBeginTime = now;
        lease.priority = granted.priority;
        lease.spotAccess = granted.spotAccess || undefined;
        if (granted.spotAccess) spotHeld.add(exporter.name);
        const capped = capDuration(lease, granted, now);
        const conditions = removeCondition(lease.conditions, "Pending");
        lease.conditions = setCondition(conditions, "Ready", true, "Ready", capped ? `${ACQUIRED_MESSAGE}; ${capped}` : ACQUIRED_MESSAGE, now);
        tx.saveLease(lease);
        tx.audit({
          namespace, action: "lease.acquire", actor: CONTROLLER, lease: lease.name, client: lease.client, exporter: exporter.name,
          detail: [granted.grantedBy ? `granted by ${granted.grantedBy}` : "", granted.spotAccess ? "spot access" : "", capped ?? ""].filter(Boolean).join("; "),
        });
        break;
      }
      case "pending": {
        const next = setCondition(lease.conditions, "Pending", true, decision.reason, decision.message, now);
        if (JSON.stringify(next) !== JSON.stringify(lease.conditions)) {
          lease.conditions = next;
          tx.saveLease(lease);
        }
        break;
      }
      case "expired":
        endLease(ctx, tx, lease, "Expired", "The lease's time window closed before an exporter was free");
        break;
      case "unsatisfiable":
      case "invalid": {
        const type = decision.kind === "invalid" ? "Invalid" : "Unsatisfiable";
        lease.ended = true;
        lease.effectiveEndTime = now;
        lease.conditions = setCondition(removeCondition(lease.conditions, "Pending"), type, true, decision.reason, decision.message, now);
        tx.saveLease(lease);
        tx.audit({
          namespace, action: "lease.refuse", actor: CONTROLLER, lease: lease.name, client: lease.client,
          exporter: lease.exporterName, reason: decision.reason || type, detail: decision.message,
        });
        break;
      }
    }
  }
}

/**
 * An open lease that names an exporter whose own record has let go of it: a commit cut
 * between its two writes (Kubernetes has no multi-object transaction; a leader killed
 * while ending a lease wrote the exporter, not the lease). The lease holds the exporter
 * until it ends, so its record says so again; assigning the exporter to another lease
 * would break the one-open-lease-per-exporter rule and fail every later pass.
 */
function repairHolds(ctx: PassContext, tx: StateTransaction, active: readonly Lease[]): void {
  for (const lease of active) {
    if (lease.ended || lease.exporter === undefined) continue;
    const exporter = ctx.store.getExporter(lease.namespace, lease.exporter);
    if (!exporter || exporter.leaseName !== null) continue;
    exporter.leaseName = lease.name;
    tx.saveExporter(exporter);
  }
}

/**
 * A spot lease holding an exporter that `lease` could have with non-spot access: the
 * one that began last, so the spot lease that has had the least time is the one cut.
 */
function spotVictim(
  ctx: PassContext,
  lease: Lease,
  exporters: readonly Readonly<ExporterRecord>[],
  access: PassAccess,
  spotHeld: ReadonlySet<string>,
): { lease: Lease; exporter: string } | undefined {
  let selector: Selector;
  try {
    selector = parseSelector(lease.selector);
  } catch {
    return undefined;
  }
  let best: { lease: Lease; exporter: string } | undefined;
  for (const e of exporters) {
    if (e.leaseName === null || !spotHeld.has(e.name) || !e.enabled || !ctx.isOnline(e)) continue;
    if (lease.exporterName !== undefined ? e.name !== lease.exporterName : !matches(selector, e.labels)) continue;
    const mine = access.of(lease.client, e);
    if (!mine || mine.spotAccess) continue;
    const holder = ctx.store.getLease(lease.namespace, e.leaseName);
    if (!holder || holder.ended || !holder.spotAccess) continue;
    if (!best || (holder.effectiveBeginTime ?? 0) > (best.lease.effectiveBeginTime ?? 0)) best = { lease: holder, exporter: e.name };
  }
  return best;
}

/**
 * Shortens the lease to what the granting policy allows (maximumDuration) and says so
 * in words for its Ready condition; undefined when it was within the limit.
 */
function capDuration(lease: Lease, granted: Access, now: number): string | undefined {
  const max = granted.maximumDurationMs;
  if (max === undefined) return undefined;
  const end = leaseExpiresAt(lease);
  if (end === undefined || end - now <= max) return undefined;
  if (lease.duration !== undefined) lease.duration = Math.min(lease.duration, max);
  if (lease.endTime !== undefined) lease.endTime = Math.min(lease.endTime, now + max);
  if (lease.duration === undefined && lease.endTime === undefined) lease.duration = max;
  return `its duration is capped at ${formatDuration(max)} by access policy ${granted.grantedBy}`;
}
