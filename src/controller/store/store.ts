/**
 * Where the controller keeps clients, exporters and leases. The interface is
 * synchronous because SQLite (the default, sqlite.ts) is: a call returns when the row
 * is read or written. A Kubernetes-backed store would keep these as custom resources
 * and could not answer synchronously; it would implement this interface over an
 * in-memory cache fed by watches and write through on commit, with `transaction`
 * becoming an optimistic-concurrency retry loop.
 *
 * Rules the callers rely on:
 * - Reads return fresh copies; mutating them changes nothing until an update call.
 *   An exporter's nested labels and reports may be shared (and frozen): replace them,
 *   do not edit them in place.
 * - Writes go through the `StoreWriter` that `transaction` hands in.
 * - `create*` insert a row whose (namespace, name) is free (callers check first, in the
 *   same transaction); `update*` replace the row with that (namespace, name).
 * - Leases are never deleted: ended leases stay as history, as upstream keeps them.
 * - The store itself refuses a second open lease on one exporter (a unique index), so
 *   a scheduling bug fails loudly instead of double-booking hardware.
 */
import type { AccessPolicy } from "../../common/access-policy.ts";
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

  getLease(namespace: string, name: string): Lease | null;
  /** In creation order (`seq`); every namespace when `namespace` is undefined. */
  listLeases(namespace: string | undefined, query?: LeaseQuery): Lease[];

  /** The namespace's ExporterAccessPolicies, sorted by name. */
  listPolicies(namespace: string): AccessPolicy[];

  close(): void;
}
