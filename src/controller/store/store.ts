/**
 * Where the controller keeps clients, exporters and leases: a SQLite file (sqlite.ts,
 * the default) or upstream's custom resources in a Kubernetes namespace
 * (kubernetes/store.ts). Reads are synchronous in both: SQLite reads the file, the
 * Kubernetes store a cache fed by watches. Writes happen in `transaction`, whose
 * callback is synchronous and whose promise settles once the writes are committed.
 *
 * Rules the callers rely on (contract.ts checks each on both backends):
 * - Reads return fresh copies; mutating them changes nothing until an update call.
 *   An exporter's nested labels and reports may be shared (and frozen): replace them,
 *   do not edit them in place.
 * - Writes go through the `StoreWriter` that `transaction` hands in; reads inside the
 *   callback see its writes; a throw rolls all of them back; `afterCommit` callbacks
 *   run only once committed. A transaction started inside one joins it.
 * - `create*` insert an object whose (namespace, name) is free (callers check first, in
 *   the same transaction); `update*` replace the object with that (namespace, name).
 * - Leases are never deleted: ended leases stay as history, as upstream keeps them.
 * - The store itself refuses a second open lease on one exporter, so a scheduling bug
 *   fails loudly instead of double-booking hardware.
 * - Two writers racing for one exporter: one wins, the other's callback sees it taken.
 *
 * Where the backends differ:
 * - Atomicity. SQLite commits a transaction at once (BEGIN IMMEDIATE, also across
 *   processes on one file). Kubernetes has no multi-object transaction: each changed
 *   object is written with its resourceVersion as precondition and a 409 re-runs the
 *   callback on fresh objects, so the callback may run more than once and a commit
 *   cut short (a killed process) leaves some objects written. The Kubernetes store
 *   orders and reads its writes so that this never double-books (kubernetes/store.ts).
 * - The unique open lease per exporter is an index in SQLite, across processes; in
 *   Kubernetes it is checked against this replica's cache, and across replicas by the
 *   exporter's precondition and by only the leader scheduling.
 * - Visibility. SQLite: a commit is visible to every reader at once. Kubernetes: to
 *   this replica at once, to the others when their watch brings it (milliseconds), and
 *   a created object's status may arrive a moment after the object.
 * - `seq`: SQLite's is an autoincrement; Kubernetes' is the creator's clock (ms) kept
 *   in an annotation, ties broken by name, so leases made on two replicas in the same
 *   millisecond are ordered by name.
 * - Times: SQLite keeps milliseconds; Kubernetes keeps upstream's fields to the second
 *   and the milliseconds in `jmp.jumpstarter.dev/*` annotations (lastSeen: to the second).
 * - Namespaces: SQLite keeps any; a Kubernetes store serves one (--namespace) and
 *   refuses writes to another.
 */
import type { AccessPolicy } from "../../common/access-policy.ts";
import type { AuditEntry, AuditQuery, NewAuditEntry } from "../audit.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";

export interface LeaseQuery {
  client?: string;
  /** Only leases that have not ended. */
  onlyActive?: boolean;
}

/**
 * Every write the store offers, reachable only inside `Store.transaction`: a change
 * made anywhere else would commit on its own, outside the scheduling pass and the
 * change events that the controller's state builds on each transaction.
 */
export interface StoreWriter {
  createClient(client: Client): void;
  updateClient(client: Client): void;
  deleteClient(namespace: string, name: string): void;

  createExporter(exporter: ExporterRecord): void;
  updateExporter(exporter: ExporterRecord): void;
  /** Sets only lastSeen, of each named exporter that exists: the heartbeat of thousands of open Status streams. */
  setLastSeen(namespace: string, names: readonly string[], at: number): void;
  deleteExporter(namespace: string, name: string): void;

  /** Inserts the lease and returns it with its `seq`, larger than any before it. */
  createLease(lease: Omit<Lease, "seq">): Lease;
  updateLease(lease: Lease): void;

  /** Creates the ExporterAccessPolicy or replaces the one of that (namespace, name). */
  putPolicy(policy: AccessPolicy): void;
  deletePolicy(namespace: string, name: string): void;

  /**
   * Adds an entry to the audit log. SQLite writes it in this transaction; Kubernetes
   * after the commit (only the run that committed), so a killed replica may lose the
   * entries of its last transaction but never records a change that did not happen.
   */
  appendAudit(entry: NewAuditEntry): void;

  /**
   * Runs `fn` once the transaction's writes are committed, before `transaction`'s
   * promise settles; not at all if it rolls back. A store that re-runs a transaction
   * (Kubernetes, on a conflict) keeps only the callbacks of the run that committed.
   */
  afterCommit(fn: () => void): void;
}

export interface Store {
  /**
   * Runs `fn` in one write transaction and commits; rolls back if it throws. `fn` is
   * synchronous and sees one consistent view, its own writes included, through the
   * store's read methods; it gets the only handle for writing. SQLite: BEGIN
   * IMMEDIATE, so other processes on the same file wait instead of interleaving; the
   * commit happens before `transaction` returns, the promise only carries the result.
   * Kubernetes: `fn` may run more than once (a 409 Conflict re-runs it on fresh
   * objects), so it must not act outside the store except through `afterCommit`.
   * A call inside a running transaction joins it.
   */
  transaction<T>(fn: (writer: StoreWriter) => T): Promise<T>;

  getClient(namespace: string, name: string): Client | null;
  listClients(namespace: string): Client[];

  getExporter(namespace: string, name: string): ExporterRecord | null;
  /** Sorted by name; every namespace when `namespace` is undefined. */
  listExporters(namespace?: string): ExporterRecord[];
  /**
   * The namespace's exporters sorted by name, read-only and uncopied: for the
   * scheduling pass, which looks at every exporter for each lease it places. Take it
   * afresh after a write rather than keep it.
   */
  scanExporters(namespace: string): readonly Readonly<ExporterRecord>[];
  /**
   * The namespace's exporters that name a lease (leaseName), exporter → lease: what
   * the scheduling pass starts from, without looking at every exporter. Read-only;
   * take it afresh after a write.
   */
  heldExporters(namespace: string): ReadonlyMap<string, string>;

  getLease(namespace: string, name: string): Lease | null;
  /** In creation order (`seq`); every namespace when `namespace` is undefined. */
  listLeases(namespace: string | undefined, query?: LeaseQuery): Lease[];

  /** The namespace's ExporterAccessPolicies, sorted by name. */
  listPolicies(namespace: string): AccessPolicy[];

  /**
   * Audit entries that match (audit.ts `auditMatches`), oldest first (SQLite: in commit
   * order; Kubernetes: by the time each was made, as replicas append them as their
   * writes land); the newest `limit` of them when given. Each has its own `seq`. Asynchronous: Kubernetes reads them from the API server
   * (they are not watched), and only `jmp admin audit` asks.
   */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;

  /**
   * Resolves once what the store writes after a commit is written: Kubernetes
   * appends the audit entries of committed transactions to their ConfigMaps in the
   * background; SQLite writes them in the transaction, so it resolves at once. A
   * controller that stops waits for it (a while) before close().
   */
  flush(): Promise<void>;

  close(): void;
}
