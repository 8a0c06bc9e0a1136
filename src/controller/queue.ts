/**
 * The scheduling pass and lease endings, applied inside the caller's write
 * transaction. The pass walks a namespace's open leases oldest first (`seq`): it ends
 * the ones past their expiry, then lets each pending lease take the first free eligible
 * exporter it matches. Because older leases choose first, a newer lease only gets an
 * exporter that no older pending lease could use: a FIFO queue.
 */
import type { ExporterRecord, Lease } from "./model.ts";
import { leaseExpiresAt } from "./lease-rules.ts";
import { evaluatePending, removeCondition, setCondition } from "./scheduler.ts";
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
  if (lease.exporter !== undefined) {
    const exporter = ctx.store.getExporter(lease.namespace, lease.exporter);
    if (exporter && exporter.leaseName === lease.name) {
      exporter.leaseName = null;
      tx.saveExporter(exporter);
    }
  }
  tx.saveLease(lease);
}

export function serveNamespace(ctx: PassContext, tx: StateTransaction, namespace: string): void {
  const now = ctx.now();
  // The exporters are read only once a pending lease needs them: with thousands of
  // exporters that read is most of a pass, and most passes (status reports, a release
  // nobody waits for) find no pending lease. Read later, they already show the leases
  // this pass ended; `held` then tracks what the pass changes after the read.
  let pool: { exporters: readonly Readonly<ExporterRecord>[]; held: Set<string> } | undefined;
  const exportersNow = () => {
    if (pool) return pool;
    const exporters = ctx.store.scanExporters(namespace);
    return (pool = { exporters, held: new Set(exporters.filter((e) => e.leaseName !== null).map((e) => e.name)) });
  };
  for (const lease of ctx.store.listLeases(namespace, { onlyActive: true })) {
    if (lease.exporter !== undefined) {
      const end = leaseExpiresAt(lease);
      if (end !== undefined && end <= now) {
        endLease(ctx, tx, lease, "Expired", "The lease has expired");
        pool?.held.delete(lease.exporter);
      }
      continue;
    }
    const { exporters, held } = exportersNow();
    // An exporter reserved for this very lease (a Kubernetes assignment whose lease
    // write never landed: see store/kubernetes/store.ts) is free for it.
    let mine = held;
    for (const e of exporters) if (e.leaseName === lease.name && held.has(e.name)) (mine === held ? (mine = new Set(held)) : mine).delete(e.name);
    const decision = evaluatePending(lease, exporters, (e) => ctx.isOnline(e), mine, now);
    switch (decision.kind) {
      case "assign": {
        const exporter = ctx.store.getExporter(namespace, decision.exporter)!;
        exporter.leaseName = lease.name;
        tx.saveExporter(exporter);
        held.add(exporter.name);
        lease.exporter = exporter.name;
        lease.effectiveBeginTime = now;
        const conditions = removeCondition(lease.conditions, "Pending");
        lease.conditions = setCondition(conditions, "Ready", true, "Ready", ACQUIRED_MESSAGE, now);
        tx.saveLease(lease);
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
        break;
      }
    }
  }
}
