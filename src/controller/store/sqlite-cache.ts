/**
 * What the SQLite store keeps in memory besides the file: every exporter, client and
 * open lease, and the access policies, parsed. All are dropped together when another
 * connection commits (seen by PRAGMA data_version) or a transaction that wrote rolls
 * back, and loaded again by the next read.
 */
import type { Database } from "bun:sqlite";
import type { AccessPolicy } from "../../common/access-policy.ts";
import { type Client, copyLease, type ExporterRecord, type Lease } from "../model.ts";
import { clientFromRow, exporterFromRow, leaseFromRow, policyFromRow, rememberJson, type Row } from "./sqlite-rows.ts";
import { replaceByName, sortByName, type SortedByName } from "./sorted-by-name.ts";

/** Something loaded from the file that a commit by another connection makes stale. */
interface Droppable {
  drop(): void;
}

/**
 * Another connection's commits show after at most this long in reads outside a write
 * transaction. Asking SQLite before every such read cost 5% of the controller's work
 * in a churn of leases (every Status stream's wake and every call's authentication
 * reads an exporter). Such a read that misses a commit less than a millisecond old is
 * as a read made a moment earlier; writes always see every earlier commit.
 */
export const OUTSIDE_TRANSACTION_CHECK_MS = 1;

/**
 * Tells the caches when the file changed under them. Inside a write transaction it
 * asks SQLite once: no other connection can commit while this one holds the write
 * lock, and the transaction must see every commit before it (a transaction reads a
 * dozen times; the PRAGMA is a statement each time). Outside one, it asks at most once
 * per OUTSIDE_TRANSACTION_CHECK_MS.
 */
export class FileVersion {
  private version = -1;
  private checked = false;
  private inTransaction = false;
  private checkedAt = -Infinity;
  private readonly caches: Droppable[] = [];

  constructor(private readonly db: Database) {}

  watch(cache: Droppable): void {
    this.caches.push(cache);
  }

  /** A write transaction began (BEGIN IMMEDIATE) or ended. */
  locked(held: boolean): void {
    this.inTransaction = held;
    this.checked = false;
  }

  /** Drops every cache if another connection committed since the last look. */
  check(): void {
    if (this.checked) return;
    if (!this.inTransaction) {
      const now = performance.now();
      if (now - this.checkedAt < OUTSIDE_TRANSACTION_CHECK_MS) return;
      this.checkedAt = now;
    }
    const { data_version } = this.db.query("PRAGMA data_version").get() as { data_version: number };
    this.checked = this.inTransaction;
    if (data_version !== this.version) {
      this.version = data_version;
      this.dropAll();
    }
  }

  /** After a rollback: what the caches took from the transaction's writes is gone from the file. */
  dropAll(): void {
    for (const c of this.caches) c.drop();
  }
}

/**
 * Freezes a parsed exporter, with its nested labels and reports, which cached copies
 * share. Nested values a status report carried over from the cached record are frozen
 * already: walking the driver reports again was 1.7% of the controller's work in churn.
 */
function frozen(e: ExporterRecord): ExporterRecord {
  Object.freeze(e.labels);
  if (e.health) Object.freeze(e.health);
  // A set, not Object.isFrozen: that walks the array's elements too (0.7% on its own).
  if (!frozenDevices.has(e.devices)) {
    for (const d of e.devices) {
      Object.freeze(d.labels);
      Object.freeze(d.methodsDescription);
      Object.freeze(d);
    }
    frozenDevices.add(Object.freeze(e.devices));
  }
  return Object.freeze(e);
}

const frozenDevices = new WeakSet<readonly unknown[]>();

const NONE_HELD: ReadonlyMap<string, string> = new Map();

/** One namespace's exporters in memory. */
interface CachedNamespace {
  byName: Map<string, ExporterRecord>;
  /** By name, with each one's position; made again when an exporter comes or goes. */
  sorted?: SortedByName<ExporterRecord>;
  /** Exporter → lease, for those that name one. */
  held: Map<string, string>;
}

/**
 * Every exporter row, parsed once and kept. The scheduler reads all exporters of a
 * namespace for each lease it places, and every call's authentication reads one:
 * parsing those rows (labels and driver reports are JSON) was most of the
 * controller's work with thousands of exporters. Writes go to the file and then
 * here. The records are frozen: reads hand out
 * shallow copies (sharing the nested labels and reports) or, for scans, the records.
 * A scan is the cache's own sorted array, not a copy (copying 10 000 entries for each
 * lease placed was a tenth of the controller's work at that size): a write replaces
 * its slot in place, which the Store contract allows (take a scan afresh after a write).
 */
export class ExporterCache {
  private namespaces: Map<string, CachedNamespace> | null = null;

  constructor(
    private readonly db: Database,
    private readonly file: FileVersion,
  ) {
    file.watch(this);
  }

  private loaded(): Map<string, CachedNamespace> {
    this.file.check();
    if (!this.namespaces) {
      this.namespaces = new Map();
      for (const row of this.db.query("SELECT * FROM exporters").all() as Row[]) this.put(exporterFromRow(row), row);
    }
    return this.namespaces;
  }

  get(namespace: string, name: string): ExporterRecord | null {
    const e = this.loaded().get(namespace)?.byName.get(name);
    return e ? { ...e } : null;
  }

  scan(namespace: string): readonly Readonly<ExporterRecord>[] {
    const ns = this.loaded().get(namespace);
    if (!ns) return [];
    ns.sorted ??= sortByName(ns.byName.values());
    return ns.sorted.records;
  }

  held(namespace: string): ReadonlyMap<string, string> {
    return this.loaded().get(namespace)?.held ?? NONE_HELD;
  }

  list(namespace?: string): ExporterRecord[] {
    const namespaces = namespace === undefined ? [...this.loaded().keys()].sort() : [namespace];
    return namespaces.flatMap((ns) => this.scan(ns).map((e) => ({ ...e })));
  }

  /** After a write of `params` to the file (only when loaded: the next read loads the file anyway). */
  written(params: Row): void {
    if (!this.namespaces) return;
    this.put(exporterFromRow(params, this.namespaces.get(params.namespace as string)?.byName.get(params.name as string)), params);
  }

  /** After an UPDATE of lastSeen alone. */
  seen(namespace: string, name: string, at: number): void {
    const e = this.namespaces?.get(namespace)?.byName.get(name);
    if (e) this.put({ ...e, lastSeen: at });
  }

  deleted(namespace: string, name: string): void {
    const ns = this.namespaces?.get(namespace);
    if (ns?.byName.delete(name)) ns.sorted = undefined;
    ns?.held.delete(name);
  }

  drop(): void {
    this.namespaces = null;
  }

  /** `row`: the row `e` was read from, whose JSON texts its nested values are remembered by. */
  private put(e: ExporterRecord, row?: Row): void {
    let ns = this.namespaces!.get(e.namespace);
    if (!ns) this.namespaces!.set(e.namespace, (ns = { byName: new Map(), held: new Map() }));
    ns.byName.set(e.name, frozen(e));
    if (row) {
      rememberJson(e.labels, row.labels as string);
      rememberJson(e.devices, row.devices as string);
      if (e.health) rememberJson(e.health, row.health as string);
    }
    if (e.leaseName !== null) ns.held.set(e.name, e.leaseName);
    else ns.held.delete(e.name);
    if (!replaceByName(ns.sorted, e)) ns.sorted = undefined;
  }
}


/**
 * The open leases (not ended), parsed once and kept, each namespace's in `seq` order
 * (a Map keeps insertion order: loaded in order, and a new lease has the highest seq).
 * Every scheduling pass reads its namespace's open leases, and a pass runs for every
 * lease change and exporter status report: reading and parsing those rows from the
 * file was a tenth of the controller's work in a churn of leases. Ended leases are
 * history, read rarely, from the file.
 */
export class OpenLeaseCache {
  private namespaces: Map<string, Map<string, Lease>> | null = null;

  constructor(
    private readonly db: Database,
    private readonly file: FileVersion,
  ) {
    file.watch(this);
  }

  private loaded(): Map<string, Map<string, Lease>> {
    this.file.check();
    if (!this.namespaces) {
      this.namespaces = new Map();
      for (const row of this.db.query("SELECT * FROM leases WHERE ended = 0 ORDER BY seq").all() as Row[]) this.put(leaseFromRow(row));
    }
    return this.namespaces;
  }

  /** The open lease, or undefined when it is ended or there is none of that name. */
  get(namespace: string, name: string): Lease | undefined {
    const l = this.loaded().get(namespace)?.get(name);
    return l && copyLease(l);
  }

  /** Open leases of a namespace (or all, by seq), of one client if given. */
  list(namespace: string | undefined, client?: string): Lease[] {
    const namespaces = this.loaded();
    const leases = namespace === undefined
      ? [...namespaces.values()].flatMap((ns) => [...ns.values()]).sort((a, b) => a.seq - b.seq)
      : [...(namespaces.get(namespace)?.values() ?? [])];
    const out: Lease[] = [];
    for (const l of leases) if (client === undefined || l.client === client) out.push(copyLease(l));
    return out;
  }

  /** After a write of `params` for the lease numbered `seq` (only when loaded: the next read loads the file anyway). */
  written(seq: number, params: Row): void {
    if (!this.namespaces) return;
    const lease = leaseFromRow({ ...params, seq });
    if (lease.ended) this.namespaces.get(lease.namespace)?.delete(lease.name);
    else this.put(lease);
  }

  drop(): void {
    this.namespaces = null;
  }

  private put(l: Lease): void {
    let ns = this.namespaces!.get(l.namespace);
    if (!ns) this.namespaces!.set(l.namespace, (ns = new Map()));
    ns.set(l.name, l);
  }
}

/**
 * Every client, parsed once and kept: each call a client makes is authenticated by
 * reading its record (uid and token id), and that read was a statement per call.
 * Reads hand out copies.
 */
export class ClientCache {
  private byKey: Map<string, Client> | null = null;

  constructor(
    private readonly db: Database,
    private readonly file: FileVersion,
  ) {
    file.watch(this);
  }

  private loaded(): Map<string, Client> {
    this.file.check();
    if (!this.byKey) {
      this.byKey = new Map();
      for (const row of this.db.query("SELECT * FROM clients").all() as Row[]) this.put(clientFromRow(row));
    }
    return this.byKey;
  }

  get(namespace: string, name: string): Client | null {
    const c = this.loaded().get(`${namespace}/${name}`);
    return c ? { ...c, labels: { ...c.labels } } : null;
  }

  /** After a write of `params` to the file (only when loaded: the next read loads the file anyway). */
  written(params: Row): void {
    if (this.byKey) this.put(clientFromRow(params));
  }

  deleted(namespace: string, name: string): void {
    this.byKey?.delete(`${namespace}/${name}`);
  }

  drop(): void {
    this.byKey = null;
  }

  private put(c: Client): void {
    this.byKey!.set(`${c.namespace}/${c.name}`, c);
  }
}

/**
 * Each namespace's access policies, read once and kept until one of them changes:
 * every scheduling pass reads them (a statement and a JSON parse per policy each time).
 * Reads hand out the parsed policies, which callers only read.
 */
export class PolicyCache {
  private namespaces = new Map<string, AccessPolicy[]>();

  constructor(
    private readonly db: Database,
    private readonly file: FileVersion,
  ) {
    file.watch(this);
  }

  list(namespace: string): AccessPolicy[] {
    this.file.check();
    let policies = this.namespaces.get(namespace);
    if (!policies) {
      const rows = this.db.query("SELECT * FROM access_policies WHERE namespace = $namespace ORDER BY name").all({ namespace }) as Row[];
      policies = rows.map((r) => policyFromRow(r));
      this.namespaces.set(namespace, policies);
    }
    return policies.slice();
  }

  /** After a write to one of the namespace's policies: it is read again when next needed. */
  changed(namespace: string): void {
    this.namespaces.delete(namespace);
  }

  drop(): void {
    this.namespaces.clear();
  }
}
