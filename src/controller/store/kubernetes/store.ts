/**
 * The Store over upstream's custom resources in one namespace. Reads come from the
 * watch-fed cache (informer.ts), so they are synchronous like SQLite's. A transaction
 * runs its callback against the cache plus an overlay that records its writes (reads
 * inside see them), then commits each changed object with its resourceVersion as the
 * precondition: a 409 Conflict (or a 404 on an object someone deleted) refreshes that
 * object and runs the callback again, up to MAX_ATTEMPTS times. After-commit callbacks
 * (the state's events) run only for the run that committed.
 *
 * Kubernetes has no multi-object transaction, so a commit can stop part way (a
 * conflict on the second object, the process killed). Two rules keep that safe:
 * - exporters are written before leases, and an assignment writes the exporter
 *   (status.leaseRef) with its precondition: two writers assigning one exporter
 *   conflict on it, and the loser re-runs on the winner's state;
 * - an exporter's leaseName is believed only while the lease it names is open and
 *   names the exporter back (status.exporterRef) or no exporter yet (an assignment in
 *   flight, or cut in half: the scheduling pass lets that lease take its own reserved
 *   exporter), never while it holds another or has ended;
 * - leases that end are written before the others, so a lease taking an exporter never
 *   lands while the one giving it up still names it. One lease is two writes (spec,
 *   then status): a release cut between them is released but open, and the pass (or
 *   the client's retry) ends it (queue.ts); a create cut between them is deleted again.
 * Transactions of one process run one at a time (as SQLite's BEGIN IMMEDIATE does).
 */
import type { AccessPolicy } from "../../../common/access-policy.ts";
import { type AuditEntry, type AuditQuery, type AuditRetention, DEFAULT_AUDIT_RETENTION, type NewAuditEntry } from "../../audit.ts";
import { type Client, copyLease, type ExporterRecord, type Lease } from "../../model.ts";
import { type ControllerError, internal, invalidArgument, unavailable } from "../../errors.ts";
import type { LeaseQuery, Store, StoreWriter } from "../store.ts";
import { getLogger } from "../../../common/log.ts";
import { callOf, GROUP, isKubeError, KINDS, type KubeApi, KubeError, type KubeObject, type Plural } from "./api.ts";
import {
  clientFromObject,
  clientToObject,
  exporterFromObject,
  exporterToObject,
  leaseFromObject,
  leaseToObject,
  mainPart,
  statusPart,
} from "./convert.ts";
import { replaceByName, sortByName, type SortedByName } from "../sorted-by-name.ts";
import { KubeAuditLog } from "./audit-log.ts";
import { type ChangeType, Informer } from "./informer.ts";
import { policyFromObject, policyToObject } from "./policy-convert.ts";

const log = getLogger("controller");

/** How often a transaction re-runs after conflicts before it gives up. */
const MAX_ATTEMPTS = 10;
/** How long an exporter's leaseRef to a lease this replica has not seen is believed. */
const DANGLING_MS = 10_000;

type Model = { clients: Client; exporters: ExporterRecord; leases: Lease; exporteraccesspolicies: AccessPolicy };

/** A change that came from the cluster (the watch) or from a commit of ours. */
export interface StoreChange {
  kind: Plural;
  type: ChangeType;
  name: string;
}

/** The writes of one transaction run: the new value by name, null when deleted. */
class Overlay {
  readonly clients = new Map<string, Client | null>();
  readonly exporters = new Map<string, ExporterRecord | null>();
  readonly leases = new Map<string, Lease | null>();
  readonly exporteraccesspolicies = new Map<string, AccessPolicy | null>();
  readonly created = { clients: new Set<string>(), exporters: new Set<string>(), leases: new Set<string>(), exporteraccesspolicies: new Set<string>() };
  readonly committed: (() => void)[] = [];
  readonly audit: NewAuditEntry[] = [];
  /** The stored objects the run read, by kind and name, captured when it ended: the preconditions. */
  readonly base = {
    clients: new Map<string, KubeObject | undefined>(),
    exporters: new Map<string, KubeObject | undefined>(),
    leases: new Map<string, KubeObject | undefined>(),
    exporteraccesspolicies: new Map<string, KubeObject | undefined>(),
  };
}

const copy = <T>(v: T): T => structuredClone(v);

/**
 * The copy a write keeps or a read hands out. Leases and exporters are read and written
 * several times per lease: structuredClone of them was a tenth of the controller's work
 * under churn. An exporter's nested values are never changed in place (see Store), so a
 * shallow copy is enough, as the SQLite store hands out.
 */
function copyOf<P extends Plural>(plural: P, value: Model[P]): Model[P] {
  if (plural === "leases") return copyLease(value as Lease) as Model[P];
  if (plural === "exporters") return { ...(value as ExporterRecord) } as Model[P];
  return copy(value);
}

/** Cached exporters are shared with every reader (see Store: replace nested values, do not edit them). */
function frozen(e: ExporterRecord): Readonly<ExporterRecord> {
  Object.freeze(e.labels);
  if (e.health) Object.freeze(e.health);
  for (const d of e.devices) Object.freeze(d);
  Object.freeze(e.devices);
  return Object.freeze(e);
}

/**
 * A write the controller's Role does not allow (403). The caller is told what an admin
 * must grant, the log keeps the API server's own words. Part of the transaction may
 * have landed (a lease's spec, not its status): a retry or the next pass finishes it.
 */
function forbidden(e: KubeError): ControllerError {
  const { verb, resource } = callOf(e);
  log.error(`the Kubernetes API server refused a write: ${e.message}`);
  return internal(`the controller's Kubernetes role may not ${verb} ${resource}: an admin must grant it, as the Role in 'jmp controller manifests' does`);
}

/** A conflict, or an object someone deleted: refresh it and run the transaction again. */
const isRetryable = (e: unknown): e is KubeError => isKubeError(e, 409, 404);

export class KubernetesStore implements Store {
  readonly namespace: string;
  private readonly informers: Record<Plural, Informer>;
  /** Converted models of the cached objects, by kind and name. */
  private readonly models = {
    clients: new Map<string, Client>(),
    exporters: new Map<string, Readonly<ExporterRecord>>(),
    leases: new Map<string, Lease>(),
    exporteraccesspolicies: new Map<string, AccessPolicy>(),
  };
  /** The exporters' scan (sorted-by-name.ts); made again when one comes or goes. */
  private sortedExporters: SortedByName<Readonly<ExporterRecord>> | null = null;
  private active: Overlay | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(change: StoreChange) => void>();
  /** Names of the cached leases that have not ended: passes read only these, not the whole history. */
  private readonly openLeases = new Set<string>();
  /** Exporters naming a lease not in the cache: which, and since when. */
  private readonly dangling = new Map<string, { lease: string; since: number }>();
  /** Leases this replica created and then deleted (undoCreate): an exporter naming one is free at once. */
  private readonly undone = new Set<string>();

  private readonly auditLog: KubeAuditLog;

  private constructor(
    readonly api: KubeApi,
    private readonly now: () => number,
    auditRetention: AuditRetention,
  ) {
    this.namespace = api.namespace;
    this.auditLog = new KubeAuditLog(api, auditRetention, now);
    const make = (plural: Plural) => new Informer(api, plural, (type, obj) => this.cached(plural, type, obj));
    this.informers = {
      clients: make("clients"), exporters: make("exporters"), leases: make("leases"), exporteraccesspolicies: make("exporteraccesspolicies"),
    };
  }

  /** Lists every kind and starts watching; resolves once the cache holds the namespace. */
  static async open(api: KubeApi, opts: { now?: () => number; auditRetention?: AuditRetention } = {}): Promise<KubernetesStore> {
    const store = new KubernetesStore(api, opts.now ?? Date.now, opts.auditRetention ?? DEFAULT_AUDIT_RETENTION);
    try {
      await Promise.all(Object.values(store.informers).map((i) => i.start()));
    } catch (e) {
      store.close();
      throw e;
    }
    return store;
  }

  /** Hears every object that changed in the cache, ours or another replica's. */
  onChange(fn: (change: StoreChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private cached(plural: Plural, type: ChangeType, obj: KubeObject): void {
    const name = obj.metadata.name;
    if (plural === "leases") {
      this.openLeases.delete(name);
      // Made again (a client may name its lease): no longer one of ours undone.
      if (type === "put") this.undone.delete(name);
    }
    if (type === "delete") {
      this.models[plural].delete(name);
      if (plural === "exporters") this.sortedExporters = null;
    } else if (plural === "clients") this.models.clients.set(name, clientFromObject(obj));
    else if (plural === "exporters") {
      const e = frozen(exporterFromObject(obj));
      this.models.exporters.set(name, e);
      if (!replaceByName(this.sortedExporters, e)) this.sortedExporters = null;
    }
    else if (plural === "exporteraccesspolicies") this.models.exporteraccesspolicies.set(name, policyFromObject(obj));
    else {
      const lease = leaseFromObject(obj);
      this.models.leases.set(name, lease);
      if (!lease.ended) this.openLeases.add(name);
    }
    for (const fn of this.listeners) fn({ kind: plural, type, name });
  }

  // ---- transactions ----

  transaction<T>(fn: (writer: StoreWriter) => T): Promise<T> {
    if (this.active) {
      try {
        return Promise.resolve(fn(this.writer(this.active)));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const run = this.queue.then(() => this.run(fn));
    this.queue = run.catch(() => {});
    return run;
  }

  private async run<T>(fn: (writer: StoreWriter) => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const overlay = new Overlay();
      this.active = overlay;
      let result: T;
      try {
        result = fn(this.writer(overlay));
      } finally {
        this.active = null;
      }
      for (const plural of ["exporteraccesspolicies", "clients", "exporters", "leases"] as const) {
        for (const name of overlay[plural].keys()) overlay.base[plural].set(name, this.informers[plural].objects.get(name));
      }
      try {
        await this.commit(overlay);
      } catch (e) {
        if (isRetryable(e) && attempt < MAX_ATTEMPTS) continue;
        if (isKubeError(e, 0)) throw unavailable(`the Kubernetes API server is unreachable: ${e.message}`);
        if (isKubeError(e, 403)) throw forbidden(e);
        throw e;
      }
      this.auditLog.append(overlay.audit);
      for (const cb of overlay.committed) cb();
      return result;
    }
  }

  /**
   * Writes the overlay: clients, exporters, then leases (those that end first); deletions
   * last. A lease ending and one taking its exporter in one transaction, the taker
   * touched first (a create whose pass ends a released lease), were written in that
   * order: until the second write, two open leases named the exporter, and for good if
   * the process died between them.
   */
  private async commit(o: Overlay): Promise<void> {
    for (const plural of ["exporteraccesspolicies", "clients", "exporters", "leases"] as const) {
      const entries = [...o[plural]];
      if (plural === "leases") entries.sort(([, a], [, b]) => Number((b as Lease | null)?.ended === true) - Number((a as Lease | null)?.ended === true));
      for (const [name, value] of entries) {
        if (value === null) continue;
        await this.write(plural, name, value, o.base[plural].get(name), o.created[plural].has(name));
      }
    }
    for (const plural of ["leases", "exporters", "clients", "exporteraccesspolicies"] as const) {
      for (const [name, value] of o[plural]) {
        if (value !== null) continue;
        const base = o.base[plural].get(name);
        if (!base) continue;
        await this.guard(plural, name, () => this.api.delete(plural, name, base.metadata.resourceVersion!));
        this.informers[plural].remove(name);
      }
    }
  }

  private toObject(plural: Plural, value: Model[Plural], from?: KubeObject): KubeObject {
    if (plural === "clients") return clientToObject(value as Client, from);
    if (plural === "exporters") return exporterToObject(value as ExporterRecord, from, this.now());
    if (plural === "exporteraccesspolicies") return policyToObject(value as AccessPolicy, from);
    return leaseToObject(value as Lease, from);
  }

  private async write(plural: Plural, name: string, value: Model[Plural], base: KubeObject | undefined, created: boolean): Promise<void> {
    const informer = this.informers[plural];
    if (created && base === undefined) {
      const desired = this.toObject(plural, value);
      const { status, ...body } = desired;
      let stored = await this.guard(plural, name, () => this.api.create(plural, { ...body, kind: KINDS[plural] }));
      if (status && Object.keys(status).length && statusPart(stored) !== statusPart(desired)) {
        const made = stored;
        try {
          stored = await this.guard(plural, name, () => this.api.replaceStatus(plural, { ...made, status }));
        } catch (e) {
          // The caller is told the create failed (and a re-run picks a new name, as a
          // lease does), so the half-made object must not stay: a lease nobody knows
          // would be scheduled and hold an exporter for its whole duration.
          await this.undoCreate(plural, name);
          throw e;
        }
      }
      informer.put(stored);
      return;
    }
    if (!base) throw new KubeError(`${plural} ${name} is gone`, 404, "NotFound");
    const desired = this.toObject(plural, value, base);
    let stored = base;
    if (mainPart(desired) !== mainPart(base)) {
      stored = await this.guard(plural, name, () => this.api.replace(plural, desired));
    }
    if (statusPart(desired) !== statusPart(stored)) {
      const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: stored.metadata.resourceVersion } };
      stored = await this.guard(plural, name, () => this.api.replaceStatus(plural, body));
    }
    if (stored !== base) informer.put(stored);
  }

  /**
   * Deletes an object this commit created whose status write failed. Without a
   * precondition: another replica's pass may have written it since, and it is ours.
   * Best effort: an API server that refuses this too is logged, and the object stays
   * (as one a process killed between the two writes leaves).
   */
  private async undoCreate(plural: Plural, name: string): Promise<void> {
    try {
      await this.api.delete(plural, name);
      this.informers[plural].remove(name);
      if (plural === "leases") {
        // The commit wrote its exporters first: one may name this lease (a re-run picks another name).
        if (this.undone.size >= 1_000) this.undone.clear();
        this.undone.add(name);
      }
    } catch (e) {
      if (isKubeError(e, 404)) return;
      log.warn(`could not delete ${plural}.${GROUP} ${name}, created by a write that then failed: ${(e as Error).message}`);
    }
  }

  /** Runs a write; on a conflict or a vanished object, refreshes that object in the cache first, then rethrows. */
  private async guard<R>(plural: Plural, name: string, call: () => Promise<R>): Promise<R> {
    try {
      return await call();
    } catch (e) {
      if (!isRetryable(e)) throw e;
      try {
        this.informers[plural].put(await this.api.get(plural, name));
      } catch (g) {
        if (isKubeError(g, 404)) this.informers[plural].remove(name);
        else throw g;
      }
      throw e;
    }
  }

  private writer(o: Overlay): StoreWriter {
    const check = (namespace: string) => {
      if (namespace !== this.namespace) {
        throw invalidArgument(`this controller keeps namespace '${this.namespace}' (its --namespace): it cannot write to namespace '${namespace}'`);
      }
    };
    const exists = <P extends Plural>(plural: P, name: string) =>
      o[plural].has(name) ? o[plural].get(name) !== null : this.models[plural].has(name);
    const put = <P extends Plural>(plural: P, value: Model[P], create: boolean) => {
      check(value.namespace);
      const there = exists(plural, value.name);
      if (create && there) throw new Error(`${plural} ${value.namespace}/${value.name} already exists`);
      if (!create && !there) throw new Error(`no ${plural} ${value.namespace}/${value.name} to update`);
      if (create) o.created[plural].add(value.name);
      (o[plural] as Map<string, Model[P] | null>).set(value.name, copyOf(plural, value));
    };
    const del = (plural: Plural, namespace: string, name: string) => {
      check(namespace);
      if (exists(plural, name)) o[plural].set(name, null);
    };
    /** One open lease per exporter, as SQLite's unique index: a scheduling bug fails loudly. */
    const unique = (lease: Lease) => {
      if (lease.ended || lease.exporter === undefined) return;
      for (const other of this.listLeases(lease.namespace, { onlyActive: true })) {
        if (other.name !== lease.name && other.exporter === lease.exporter) {
          throw new Error(`exporter ${lease.namespace}/${lease.exporter} is already held by lease ${other.name} (one open lease per exporter)`);
        }
      }
    };
    return {
      createClient: (c) => put("clients", c, true),
      updateClient: (c) => put("clients", c, false),
      deleteClient: (ns, name) => del("clients", ns, name),
      createExporter: (e) => put("exporters", e, true),
      updateExporter: (e) => put("exporters", e, false),
      setLastSeen: (ns, names, at) => {
        for (const name of names) {
          const e = this.getExporter(ns, name);
          if (e) put("exporters", { ...e, lastSeen: at }, false);
        }
      },
      deleteExporter: (ns, name) => del("exporters", ns, name),
      createLease: (lease) => {
        const created = { ...lease, seq: lease.createdAt } as Lease;
        unique(created);
        put("leases", created, true);
        return copyLease(created);
      },
      updateLease: (lease) => {
        unique(lease);
        put("leases", lease, false);
      },
      putPolicy: (p) => put("exporteraccesspolicies", p, !exists("exporteraccesspolicies", p.name)),
      deletePolicy: (ns, name) => del("exporteraccesspolicies", ns, name),
      appendAudit: (entry) => o.audit.push(entry),
      afterCommit: (fn) => o.committed.push(fn),
    };
  }

  // ---- reads ----

  private view<P extends Plural>(plural: P, name: string): Model[P] | null | undefined {
    const o = this.active;
    if (o && o[plural].has(name)) return o[plural].get(name) as Model[P] | null;
    return this.models[plural].get(name) as Model[P] | undefined;
  }

  /**
   * The exporter with its leaseName believed only while that lease is open and names
   * it back, or names no exporter yet: another writer's assignment whose lease write
   * has not landed (or never will, if it died; the pass then lets that lease take it).
   */
  private held(e: Readonly<ExporterRecord>): Readonly<ExporterRecord> {
    if (e.leaseName === null) return e;
    if (this.active?.exporters.has(e.name)) return e;
    const lease = this.view("leases", e.leaseName);
    if (lease === undefined) {
      if (this.undone.has(e.leaseName)) return Object.freeze({ ...e, leaseName: null });
      // A lease not seen yet is another writer's, created in the same commit as this
      // assignment: its watch event is on the way, believe it a while. One that stays
      // unseen was deleted (kubectl, upstream's clean-up): the exporter is free.
      const d = this.dangling.get(e.name);
      if (!d || d.lease !== e.leaseName) this.dangling.set(e.name, { lease: e.leaseName, since: this.now() });
      else if (this.now() - d.since >= DANGLING_MS) return Object.freeze({ ...e, leaseName: null });
      return e;
    }
    this.dangling.delete(e.name);
    if (lease && !lease.ended && (lease.exporter === e.name || lease.exporter === undefined)) return e;
    return Object.freeze({ ...e, leaseName: null });
  }

  getClient(namespace: string, name: string): Client | null {
    if (namespace !== this.namespace) return null;
    const c = this.view("clients", name);
    return c ? copy(c) : null;
  }

  listClients(namespace: string): Client[] {
    if (namespace !== this.namespace) return [];
    const names = new Set([...this.models.clients.keys(), ...(this.active?.clients.keys() ?? [])]);
    return [...names].sort().map((n) => this.view("clients", n)).filter((c): c is Client => !!c).map(copy);
  }

  getExporter(namespace: string, name: string): ExporterRecord | null {
    if (namespace !== this.namespace) return null;
    const e = this.view("exporters", name);
    return e ? { ...this.held(e) } : null;
  }

  listExporters(namespace?: string): ExporterRecord[] {
    if (namespace !== undefined && namespace !== this.namespace) return [];
    return this.scanExporters(this.namespace).map((e) => ({ ...e }));
  }

  scanExporters(namespace: string): readonly Readonly<ExporterRecord>[] {
    if (namespace !== this.namespace) return [];
    const o = this.active;
    if (!o || o.exporters.size === 0) {
      const { records } = (this.sortedExporters ??= sortByName(this.models.exporters.values()));
      const leasesChanged = (o?.leases.size ?? 0) > 0;
      return leasesChanged || records.some((e) => e.leaseName !== null) ? records.map((e) => this.held(e)) : records;
    }
    const names = new Set([...this.models.exporters.keys(), ...o.exporters.keys()]);
    return [...names].sort()
      .map((n) => this.view("exporters", n))
      .filter((e): e is ExporterRecord => !!e)
      .map((e) => this.held(Object.isFrozen(e) ? e : Object.freeze({ ...e })));
  }

  heldExporters(namespace: string): ReadonlyMap<string, string> {
    const held = new Map<string, string>();
    for (const e of this.scanExporters(namespace)) if (e.leaseName !== null) held.set(e.name, e.leaseName);
    return held;
  }

  getLease(namespace: string, name: string): Lease | null {
    if (namespace !== this.namespace) return null;
    const l = this.view("leases", name);
    return l ? copyLease(l) : null;
  }

  listLeases(namespace: string | undefined, query: LeaseQuery = {}): Lease[] {
    if (namespace !== undefined && namespace !== this.namespace) return [];
    const cached = query.onlyActive ? this.openLeases : this.models.leases.keys();
    const names = new Set([...cached, ...(this.active?.leases.keys() ?? [])]);
    const out: Lease[] = [];
    for (const n of names) {
      const l = this.view("leases", n);
      if (!l || (query.onlyActive && l.ended) || (query.client !== undefined && l.client !== query.client)) continue;
      out.push(l);
    }
    out.sort((a, b) => a.seq - b.seq || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out.map(copyLease);
  }

  listPolicies(namespace: string): AccessPolicy[] {
    if (namespace !== this.namespace) return [];
    const names = new Set([...this.models.exporteraccesspolicies.keys(), ...(this.active?.exporteraccesspolicies.keys() ?? [])]);
    return [...names].sort().map((n) => this.view("exporteraccesspolicies", n)).filter((p): p is AccessPolicy => !!p).map(copy);
  }

  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.auditLog.list(query);
  }

  /** Resolves once the audit entries of every committed transaction are written. */
  flush(): Promise<void> {
    return this.auditLog.flush();
  }

  close(): void {
    this.auditLog.close();
    for (const i of Object.values(this.informers)) i.stop();
  }
}
