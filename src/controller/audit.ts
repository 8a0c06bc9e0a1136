/**
 * The audit log: what was done to the lab, by whom, when and why. Each entry is
 * written in the same store transaction as the change it describes (SQLite), or just
 * after that transaction commits (Kubernetes, which has no multi-object transaction),
 * so an entry never describes a change that did not happen. Kept in the store, bounded
 * by age and count (`AuditRetention`), and read with `jmp admin audit`.
 */

/** Who did it: `client/NAME`, `exporter/NAME`, `admin/NAME`, or the controller itself. */
export type Actor = string;
export const CONTROLLER: Actor = "controller";
/** An admin call whose admin is not known (a caller inside the controller, a test). */
export const ADMIN: Actor = "admin";
export const actorOf = (kind: "Client" | "Exporter" | "Admin", name: string): Actor => `${kind.toLowerCase()}/${name}`;

export const AUDIT_ACTIONS = [
  "client.create", "client.delete", "client.token-rotate",
  "exporter.create", "exporter.delete", "exporter.token-rotate", "exporter.update",
  "exporter.disable", "exporter.enable",
  "policy.apply", "policy.delete",
  "lease.create", "lease.acquire", "lease.extend", "lease.update",
  "lease.release", "lease.expire", "lease.revoke", "lease.refuse",
  "token.refuse",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  /** Larger than every entry's before it in this store. */
  seq: number;
  /** Milliseconds since the epoch. */
  at: number;
  /** "" for what concerns no one namespace (a token that names none). */
  namespace: string;
  action: AuditAction;
  actor: Actor;
  lease?: string;
  client?: string;
  exporter?: string;
  /** A word a script can match: a lease's end reason, a refusal's reason. */
  reason: string;
  /** What a person reads: what changed, the message shown to the client. */
  detail: string;
}

export type NewAuditEntry = Omit<AuditEntry, "seq">;

export interface AuditQuery {
  /** Entries of this namespace and those of none (""). */
  namespace: string;
  /** Only entries at or after this time (ms). */
  since?: number;
  client?: string;
  exporter?: string;
  lease?: string;
  /** The newest this many of those that match; the answer is still oldest first. */
  limit?: number;
}

export interface AuditRetention {
  maxAgeMs: number;
  maxEntries: number;
}

/** A month of a busy lab: at 100 leases an hour, about five entries each, 100 000 is four weeks. */
export const DEFAULT_AUDIT_RETENTION: AuditRetention = { maxAgeMs: 30 * 24 * 3600_000, maxEntries: 100_000 };

/** The largest `limit` one query answers: the admin API's messages stay bounded. */
export const MAX_AUDIT_LIMIT = 10_000;

/** Whether an entry answers a query (both backends filter with this, so they agree). */
export function auditMatches(entry: AuditEntry, q: AuditQuery): boolean {
  if (entry.namespace !== q.namespace && entry.namespace !== "") return false;
  if (q.since !== undefined && entry.at < q.since) return false;
  // A client is named as the lease's holder or as the one who acted.
  if (q.client !== undefined && entry.client !== q.client && entry.actor !== actorOf("Client", q.client)) return false;
  if (q.exporter !== undefined && entry.exporter !== q.exporter && entry.actor !== actorOf("Exporter", q.exporter)) return false;
  if (q.lease !== undefined && entry.lease !== q.lease) return false;
  return true;
}

/** The action a lease's end is audited as, from the reason its Ready condition gives. */
export function endAction(reason: string): AuditAction {
  if (reason === "Released") return "lease.release";
  if (reason === "Expired") return "lease.expire";
  return "lease.revoke";
}

/** Ends the controller decides on its own, whoever's call ran the pass that found them. */
const CONTROLLER_ENDS = new Set(["Expired", "Preempted", "ClientGone"]);
export const endedByController = (reason: string): boolean => CONTROLLER_ENDS.has(reason);
