/**
 * The only way the controller's state writes. `ControllerState.mutate` opens one
 * store transaction and hands its code a StateTransaction; every write through it is
 * recorded, so the events fired after the commit are exactly the changes made, and
 * a write outside a transaction does not type-check (the Store has no write methods
 * of its own).
 */
import type { AccessPolicy } from "../common/access-policy.ts";
import { type Actor, CONTROLLER, type NewAuditEntry } from "./audit.ts";
import type { Client, ExporterRecord, Lease, PrincipalRef } from "./model.ts";
import type { StoreWriter } from "./store/store.ts";

const key = (namespace: string, name: string) => `${namespace}/${name}`;

export class StateTransaction {
  /** The last saved version of each lease and exporter changed, by `namespace/name`. */
  readonly leases = new Map<string, Lease>();
  readonly exporters = new Map<string, ExporterRecord>();
  /** Principals whose older tokens stopped working (deleted or rotated). */
  readonly revoked: PrincipalRef[] = [];

  /**
   * @param actor who asked for this transaction's changes; entries of changes the
   *   controller makes on its own (a lease that expired during the pass) name it instead.
   */
  constructor(
    private readonly writer: StoreWriter,
    readonly actor: Actor = CONTROLLER,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records an audit entry with this transaction's actor (unless the entry names its own) and time. */
  audit(entry: Omit<NewAuditEntry, "at" | "actor" | "reason" | "detail"> & Partial<Pick<NewAuditEntry, "actor" | "reason" | "detail">>): void {
    this.writer.appendAudit({ actor: this.actor, reason: "", detail: "", ...entry, at: this.now() });
  }

  /** Runs `fn` after the commit (see StoreWriter.afterCommit). */
  afterCommit(fn: () => void): void {
    this.writer.afterCommit(fn);
  }

  /** Clients have no event of their own: nothing watches them. */
  createClient(client: Client): void {
    this.writer.createClient(client);
  }

  deleteClient(namespace: string, name: string): void {
    this.writer.deleteClient(namespace, name);
    this.revoked.push({ kind: "Client", namespace, name });
  }

  createExporter(exporter: ExporterRecord): void {
    this.writer.createExporter(exporter);
    this.exporters.set(key(exporter.namespace, exporter.name), exporter);
  }

  saveExporter(exporter: ExporterRecord): void {
    this.writer.updateExporter(exporter);
    this.exporters.set(key(exporter.namespace, exporter.name), exporter);
  }

  /** A deleted exporter is announced as revoked, not changed: there is nothing left to show. */
  deleteExporter(namespace: string, name: string): void {
    this.writer.deleteExporter(namespace, name);
    this.exporters.delete(key(namespace, name));
    this.revoked.push({ kind: "Exporter", namespace, name });
  }

  /**
   * Stores the principal with its new token id. Announced as a revocation only,
   * whatever its kind: nothing that a listing or a Status stream shows has changed.
   */
  rotateToken(principal: { kind: "Client"; record: Client } | { kind: "Exporter"; record: ExporterRecord }): void {
    if (principal.kind === "Client") this.writer.updateClient(principal.record);
    else this.writer.updateExporter(principal.record);
    const { namespace, name } = principal.record;
    this.revoked.push({ kind: principal.kind, namespace, name });
  }

  /**
   * Refreshes lastSeen of exporters whose Status stream is open. Not announced: while
   * the stream is open the exporter is online whatever lastSeen says.
   */
  setLastSeen(namespace: string, names: readonly string[], at: number): void {
    this.writer.setLastSeen(namespace, names, at);
  }

  createLease(lease: Omit<Lease, "seq">): Lease {
    const created = this.writer.createLease(lease);
    this.leases.set(key(created.namespace, created.name), created);
    return created;
  }

  /** Policies have no event of their own: the scheduling pass that follows shows what they changed. */
  putPolicy(policy: AccessPolicy): void {
    this.writer.putPolicy(policy);
  }

  deletePolicy(namespace: string, name: string): void {
    this.writer.deletePolicy(namespace, name);
  }

  saveLease(lease: Lease): void {
    this.writer.updateLease(lease);
    this.leases.set(key(lease.namespace, lease.name), lease);
  }
}
