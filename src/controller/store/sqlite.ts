/**
 * The default Store: one SQLite file `<dataDir>/jumpstarter.db` (bun:sqlite, WAL).
 * The schema is versioned: `schema_version` holds the migrations applied, and opening
 * the file applies the missing ones in order, each in its own transaction.
 */
import { Database } from "bun:sqlite";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  type AccessPolicy, parseAccessPolicy, POLICY_API_VERSION, POLICY_KIND, policySpecDocument,
} from "../../common/access-policy.ts";
import { UserError } from "../../common/errors.ts";
import { actorOf, type AuditAction, type AuditEntry, type AuditQuery, type AuditRetention, DEFAULT_AUDIT_RETENTION } from "../audit.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";
import type { LeaseQuery, Store, StoreWriter } from "./store.ts";

/**
 * Migration N is `MIGRATIONS[N - 1]`. Append new ones (ALTER TABLE ..., backfills);
 * never edit one that has shipped, since existing files have already applied it.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE clients (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    labels TEXT NOT NULL,
    token_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
  );
  CREATE TABLE exporters (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    labels TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    token_id TEXT NOT NULL,
    devices TEXT NOT NULL,
    status INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    registered INTEGER NOT NULL,
    last_seen INTEGER,
    lease_name TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
  );
  CREATE TABLE leases (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    client TEXT NOT NULL,
    selector TEXT NOT NULL,
    exporter_name TEXT,
    duration INTEGER,
    begin_time INTEGER,
    end_time INTEGER,
    allow_disabled INTEGER NOT NULL,
    tags TEXT NOT NULL,
    context TEXT NOT NULL,
    exporter TEXT,
    effective_begin_time INTEGER,
    effective_end_time INTEGER,
    released INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    conditions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (namespace, name)
  );
  CREATE UNIQUE INDEX leases_one_open_per_exporter ON leases (namespace, exporter)
    WHERE exporter IS NOT NULL AND ended = 0;
  CREATE INDEX leases_open ON leases (namespace, ended, seq);
  CREATE INDEX leases_by_client ON leases (namespace, client, seq);
  `,
  // 2: the presence timeout a client may ask for (LeaseSpec.presenceTimeout), in ms.
  `ALTER TABLE leases ADD COLUMN presence_timeout INTEGER;`,
  // 3: when a client first dialled the lease (Lease.dialedAt). Leases that already had
  // an exporter may have been dialled by a controller that did not record it: they
  // count as dialled, as that controller treated them after a restart.
  `ALTER TABLE leases ADD COLUMN dialed_at INTEGER;
   UPDATE leases SET dialed_at = effective_begin_time WHERE ended = 0 AND exporter IS NOT NULL;`,
  // 4: why an admin disabled an exporter (ExporterRecord.disabledReason), and its
  // latest health check as JSON (ExporterRecord.health; NULL: it runs none).
  `ALTER TABLE exporters ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
   ALTER TABLE exporters ADD COLUMN health TEXT;`,
  // 5: ExporterAccessPolicies (their spec as upstream's YAML shape, in JSON), and what
  // the granting policy said of each lease (upstream's status.priority, status.spotAccess).
  `CREATE TABLE access_policies (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
  );
   ALTER TABLE leases ADD COLUMN priority INTEGER;
   ALTER TABLE leases ADD COLUMN spot_access INTEGER NOT NULL DEFAULT 0;`,
  // 6: the audit log (audit.ts), pruned by age and count as it grows.
  `CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    lease TEXT,
    client TEXT,
    exporter TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
  );
   CREATE INDEX audit_at ON audit (at);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
export const DATABASE_FILE = "jumpstarter.db";

type Row = Record<string, string | number | null>;

const json = (v: unknown) => JSON.stringify(v);
const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
const nul = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function clientFromRow(r: Row): Client {
  return {
    namespace: r.namespace as string,
    name: r.name as string,
    uid: r.uid as string,
    labels: JSON.parse(r.labels as string),
    tokenId: r.token_id as string,
    createdAt: r.created_at as number,
  };
}

function clientParams(c: Client): Row {
  return {
    namespace: c.namespace,
    name: c.name,
    uid: c.uid,
    labels: json(c.labels),
    token_id: c.tokenId,
    created_at: c.createdAt,
  };
}

function exporterFromRow(r: Row): ExporterRecord {
  return {
    namespace: r.namespace as string,
    name: r.name as string,
    uid: r.uid as string,
    labels: JSON.parse(r.labels as string),
    enabled: r.enabled === 1,
    disabledReason: r.disabled_reason as string,
    health: r.health === null ? null : JSON.parse(r.health as string),
    tokenId: r.token_id as string,
    devices: JSON.parse(r.devices as string),
    status: r.status as number,
    statusMessage: r.status_message as string,
    registered: r.registered === 1,
    lastSeen: r.last_seen as number | null,
    leaseName: r.lease_name as string | null,
    createdAt: r.created_at as number,
  };
}

function exporterParams(e: ExporterRecord): Row {
  return {
    namespace: e.namespace,
    name: e.name,
    uid: e.uid,
    labels: json(e.labels),
    enabled: e.enabled ? 1 : 0,
    disabled_reason: e.disabledReason,
    health: e.health === null ? null : json(e.health),
    token_id: e.tokenId,
    devices: json(e.devices),
    status: e.status,
    status_message: e.statusMessage,
    registered: e.registered ? 1 : 0,
    last_seen: e.lastSeen,
    lease_name: e.leaseName,
    created_at: e.createdAt,
  };
}

function leaseFromRow(r: Row): Lease {
  return {
    seq: r.seq as number,
    namespace: r.namespace as string,
    name: r.name as string,
    client: r.client as string,
    selector: r.selector as string,
    exporterName: opt(r.exporter_name as string | null),
    duration: opt(r.duration as number | null),
    beginTime: opt(r.begin_time as number | null),
    endTime: opt(r.end_time as number | null),
    allowDisabled: r.allow_disabled === 1,
    tags: JSON.parse(r.tags as string),
    context: JSON.parse(r.context as string),
    exporter: opt(r.exporter as string | null),
    effectiveBeginTime: opt(r.effective_begin_time as number | null),
    effectiveEndTime: opt(r.effective_end_time as number | null),
    released: r.released === 1,
    ended: r.ended === 1,
    conditions: JSON.parse(r.conditions as string),
    createdAt: r.created_at as number,
    presenceTimeout: opt(r.presence_timeout as number | null),
    dialedAt: opt(r.dialed_at as number | null),
    priority: opt(r.priority as number | null),
    spotAccess: r.spot_access === 1 ? true : undefined,
  };
}

function leaseParams(l: Omit<Lease, "seq">): Row {
  return {
    namespace: l.namespace,
    name: l.name,
    client: l.client,
    selector: l.selector,
    exporter_name: nul(l.exporterName),
    duration: nul(l.duration),
    begin_time: nul(l.beginTime),
    end_time: nul(l.endTime),
    allow_disabled: l.allowDisabled ? 1 : 0,
    tags: json(l.tags),
    context: json(l.context),
    exporter: nul(l.exporter),
    effective_begin_time: nul(l.effectiveBeginTime),
    effective_end_time: nul(l.effectiveEndTime),
    released: l.released ? 1 : 0,
    ended: l.ended ? 1 : 0,
    conditions: json(l.conditions),
    created_at: l.createdAt,
    presence_timeout: nul(l.presenceTimeout),
    dialed_at: nul(l.dialedAt),
    priority: nul(l.priority),
    spot_access: l.spotAccess ? 1 : 0,
  };
}

/** Stored as upstream's spec, so it is read back with the same checks an applied file gets. */
function policyFromRow(r: Row): AccessPolicy {
  const document = { apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, metadata: { name: r.name }, spec: JSON.parse(r.spec as string) };
  return parseAccessPolicy(document, r.namespace as string);
}

/** `INSERT INTO t (a, b) VALUES ($a, $b)` for the given column names. */
function insertSql(table: string, columns: string[]): string {
  return `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map((c) => `$${c}`).join(", ")})`;
}

/** `UPDATE t SET a = $a ... WHERE namespace = $namespace AND name = $name`. */
function updateSql(table: string, columns: string[]): string {
  const set = columns.filter((c) => c !== "namespace" && c !== "name").map((c) => `${c} = $${c}`);
  return `UPDATE ${table} SET ${set.join(", ")} WHERE namespace = $namespace AND name = $name`;
}

/** Freezes a parsed exporter, with its nested labels and reports, which cached copies share. */
function frozen(e: ExporterRecord): ExporterRecord {
  Object.freeze(e.labels);
  if (e.health) Object.freeze(e.health);
  for (const d of e.devices) {
    Object.freeze(d.labels);
    Object.freeze(d.methodsDescription);
    Object.freeze(d);
  }
  Object.freeze(e.devices);
  return Object.freeze(e);
}

/** One namespace's exporters in memory. */
interface CachedNamespace {
  byName: Map<string, ExporterRecord>;
  /** By name, with each one's position; made again when an exporter comes or goes. */
  sorted?: { records: ExporterRecord[]; at: Map<string, number> };
}

/**
 * Every exporter row, parsed once and kept. The scheduler reads all exporters of a
 * namespace for each lease it places, and every call's authentication reads one:
 * parsing those rows (labels and driver reports are JSON) was most of the
 * controller's work with thousands of exporters. Writes go to the file and then
 * here. A rollback drops the cache, and so does a commit by another connection, seen
 * by PRAGMA data_version before each read. The records are frozen: reads hand out
 * shallow copies (sharing the nested labels and reports) or, for scans, the records.
 */
class ExporterCache {
  private namespaces: Map<string, CachedNamespace> | null = null;
  private version = -1;
  /**
   * Inside a write transaction, once checked: no other connection can commit while
   * this one holds the write lock, so the check need not run before every read (a
   * transaction reads exporters a dozen times; the PRAGMA is a statement each time).
   */
  private checked = false;
  private inTransaction = false;

  constructor(private readonly db: Database) {}

  /** A write transaction began (BEGIN IMMEDIATE) or ended. */
  locked(held: boolean): void {
    this.inTransaction = held;
    this.checked = false;
  }

  private loaded(): Map<string, CachedNamespace> {
    if (this.namespaces && this.checked) return this.namespaces;
    const { data_version } = this.db.query("PRAGMA data_version").get() as { data_version: number };
    this.checked = this.inTransaction;
    if (data_version !== this.version) {
      this.version = data_version;
      this.namespaces = null;
    }
    if (!this.namespaces) {
      this.namespaces = new Map();
      for (const row of this.db.query("SELECT * FROM exporters").all() as Row[]) this.put(exporterFromRow(row));
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
    if (!ns.sorted) {
      const records = [...ns.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      ns.sorted = { records, at: new Map(records.map((e, i) => [e.name, i])) };
    }
    return ns.sorted.records.slice();
  }

  list(namespace?: string): ExporterRecord[] {
    const namespaces = namespace === undefined ? [...this.loaded().keys()].sort() : [namespace];
    return namespaces.flatMap((ns) => this.scan(ns).map((e) => ({ ...e })));
  }

  /** After a write of `params` to the file (only when loaded: the next read loads the file anyway). */
  written(params: Row): void {
    if (this.namespaces) this.put(exporterFromRow(params));
  }

  /** After an UPDATE of lastSeen alone. */
  seen(namespace: string, name: string, at: number): void {
    const e = this.namespaces?.get(namespace)?.byName.get(name);
    if (e) this.put({ ...e, lastSeen: at });
  }

  deleted(namespace: string, name: string): void {
    const ns = this.namespaces?.get(namespace);
    if (ns?.byName.delete(name)) ns.sorted = undefined;
  }

  drop(): void {
    this.namespaces = null;
  }

  private put(e: ExporterRecord): void {
    let ns = this.namespaces!.get(e.namespace);
    if (!ns) this.namespaces!.set(e.namespace, (ns = { byName: new Map() }));
    ns.byName.set(e.name, frozen(e));
    const i = ns.sorted?.at.get(e.name);
    if (i !== undefined) ns.sorted!.records[i] = e;
    else ns.sorted = undefined;
  }
}

/** What `inspectDatabase` found: no file, a zero-byte one, or a database at `version`. */
export type DatabaseFile = { path: string } & ({ kind: "missing" } | { kind: "empty" } | { kind: "database"; version: number });

const SQLITE_MAGIC = "SQLite format 3\0";

/**
 * Reads `<dataDir>/jumpstarter.db`, if there is one, and refuses what the
 * controller cannot use: not a database, another program's database, or one written
 * by a newer jmp. It changes nothing: the controller checks before it touches any
 * file. Hence a copy in memory rather than SQLite on the file, which makes -wal and
 * -shm files beside it even when it only reads.
 */
export function inspectDatabase(dataDir: string): DatabaseFile {
  const path = join(dataDir, DATABASE_FILE);
  const restore = "restore it from a backup, or move it away to start an empty lab";
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${path} is not a file: ${restore}`, 2);
    size = st.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { path, kind: "missing" };
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`, 2);
  }
  if (size === 0) return { path, kind: "empty" };
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`, 2);
  }
  if (bytes.subarray(0, SQLITE_MAGIC.length).toString("latin1") !== SQLITE_MAGIC) {
    throw new UserError(`${path} is not a SQLite database: ${restore}`, 2);
  }
  // An in-memory copy cannot be in WAL mode: mark it as a rollback-journal file (header bytes 18, 19).
  bytes[18] = 1;
  bytes[19] = 1;
  let db: Database | undefined;
  try {
    db = Database.deserialize(bytes, true);
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
    if (tables.length === 0) return { path, kind: "database", version: 0 };
    if (!tables.includes("schema_version")) {
      throw new UserError(`${path} is a SQLite database, but not a jmp controller's (it has no schema_version table): ${restore}`, 2);
    }
    const version = (db.query("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null }).v ?? 0;
    if (version > MIGRATIONS.length) {
      throw new UserError(
        `${path} has schema version ${version}, newer than this jmp understands (${MIGRATIONS.length}): ` +
          "run the jmp that wrote it (or a newer one), or restore a backup made before the upgrade",
        2,
      );
    }
    return { path, kind: "database", version };
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${path} is damaged or not a SQLite database (${(e as Error).message}): ${restore}`, 2);
  } finally {
    db?.close();
  }
}

export interface SqliteStoreOptions {
  /** How long a writer waits for another process's transaction (PRAGMA busy_timeout). */
  busyTimeoutMs?: number;
  /** How much of the audit log is kept (default DEFAULT_AUDIT_RETENTION). */
  auditRetention?: AuditRetention;
}

/** Pruning the audit log costs two indexed deletes: done once per this many entries, not on each. */
const PRUNE_EVERY = 200;

export class SqliteStore implements Store {
  readonly path: string;
  private readonly db: Database;
  private depth = 0;
  /** The after-commit callbacks of the running transaction. */
  private onCommit: (() => void)[] | null = null;
  private readonly exporters: ExporterCache;
  private readonly writer: StoreWriter;
  private readonly retention: AuditRetention;
  private appendedSincePrune = 0;

  /** Opens (creating if needed) `<dataDir>/jumpstarter.db` and migrates it. */
  static open(dataDir: string, opts: SqliteStoreOptions = {}): SqliteStore {
    mkdirSync(dataDir, { recursive: true });
    return new SqliteStore(join(dataDir, DATABASE_FILE), opts);
  }

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.retention = opts.auditRetention ?? DEFAULT_AUDIT_RETENTION;
    this.db = new Database(path, { create: true, strict: true });
    this.exporters = new ExporterCache(this.db);
    this.writer = this.makeWriter();
    try {
      this.db.exec(`PRAGMA busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec("PRAGMA synchronous = NORMAL");
      this.migrate();
      this.transactionSync(() => this.pruneAudit());
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** The schema version of the open file (the number of migrations applied). */
  schemaVersion(): number {
    const row = this.db.query("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null };
    return row.v ?? 0;
  }

  private migrate(): void {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    const current = this.schemaVersion();
    if (current > MIGRATIONS.length) {
      throw new Error(
        `${this.path} has schema version ${current}, newer than this jmp understands (${MIGRATIONS.length}); ` +
          "run a newer jmp or restore an older backup",
      );
    }
    for (let version = current + 1; version <= MIGRATIONS.length; version++) {
      this.transactionSync(() => {
        this.db.exec(MIGRATIONS[version - 1]!);
        this.db.query("INSERT INTO schema_version (version, applied_at) VALUES ($version, $at)").run({ version, at: Date.now() });
      });
    }
  }

  /** Commits before it returns: the promise is settled already (see Store.transaction). */
  transaction<T>(fn: (writer: StoreWriter) => T): Promise<T> {
    try {
      return Promise.resolve(this.transactionSync(fn));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The transaction, synchronously: for migrations and for tests of this store alone. */
  transactionSync<T>(fn: (writer: StoreWriter) => T): T {
    if (this.depth > 0) return fn(this.writer);
    this.db.exec("BEGIN IMMEDIATE");
    this.depth++;
    const committed: (() => void)[] = [];
    this.onCommit = committed;
    let result: T;
    this.exporters.locked(true);
    try {
      result = fn(this.writer);
      this.db.exec("COMMIT");
    } catch (err) {
      // Some failures (e.g. a full disk) make SQLite roll back by itself.
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      this.exporters.drop();
      throw err;
    } finally {
      this.exporters.locked(false);
      this.depth--;
      this.onCommit = null;
    }
    for (const cb of committed) cb();
    return result;
  }

  private insert(table: string, params: Row): void {
    this.db.query(insertSql(table, Object.keys(params))).run(params);
  }

  private update(table: string, params: Row): void {
    const changes = this.db.query(updateSql(table, Object.keys(params))).run(params).changes;
    if (changes !== 1) throw new Error(`no ${table} row ${params.namespace}/${params.name} to update`);
  }

  /** The writes, handed only to `transaction`'s callback. */
  private makeWriter(): StoreWriter {
    const db = this.db;
    const exporters = this.exporters;
    return {
      createClient: (client) => this.insert("clients", clientParams(client)),
      updateClient: (client) => this.update("clients", clientParams(client)),
      deleteClient: (namespace, name) => {
        db.query("DELETE FROM clients WHERE namespace = $namespace AND name = $name").run({ namespace, name });
      },
      createExporter: (exporter) => {
        const params = exporterParams(exporter);
        this.insert("exporters", params);
        exporters.written(params);
      },
      updateExporter: (exporter) => {
        const params = exporterParams(exporter);
        this.update("exporters", params);
        exporters.written(params);
      },
      setLastSeen: (namespace, names, at) => {
        const update = db.query("UPDATE exporters SET last_seen = $at WHERE namespace = $namespace AND name = $name");
        for (const name of names) {
          if (update.run({ at, namespace, name }).changes === 1) exporters.seen(namespace, name, at);
        }
      },
      deleteExporter: (namespace, name) => {
        db.query("DELETE FROM exporters WHERE namespace = $namespace AND name = $name").run({ namespace, name });
        exporters.deleted(namespace, name);
      },
      createLease: (lease) => {
        const params = leaseParams(lease);
        const row = db.query(`${insertSql("leases", Object.keys(params))} RETURNING seq`).get(params) as { seq: number };
        return { ...lease, seq: row.seq };
      },
      updateLease: (lease) => this.update("leases", leaseParams(lease)),
      putPolicy: (policy) => {
        db.query("INSERT OR REPLACE INTO access_policies (namespace, name, spec) VALUES ($namespace, $name, $spec)")
          .run({ namespace: policy.namespace, name: policy.name, spec: json(policySpecDocument(policy)) });
      },
      deletePolicy: (namespace, name) => {
        db.query("DELETE FROM access_policies WHERE namespace = $namespace AND name = $name").run({ namespace, name });
      },
      appendAudit: (entry) => {
        this.insert("audit", {
          at: entry.at, namespace: entry.namespace, action: entry.action, actor: entry.actor,
          lease: entry.lease ?? null, client: entry.client ?? null, exporter: entry.exporter ?? null,
          reason: entry.reason, detail: entry.detail,
        });
        if (++this.appendedSincePrune >= PRUNE_EVERY) this.pruneAudit();
      },
      afterCommit: (fn) => {
        if (!this.onCommit) throw new Error("afterCommit outside a transaction");
        this.onCommit.push(fn);
      },
    };
  }

  getClient(namespace: string, name: string): Client | null {
    const row = this.db.query("SELECT * FROM clients WHERE namespace = $namespace AND name = $name").get({ namespace, name });
    return row ? clientFromRow(row as Row) : null;
  }

  listClients(namespace: string): Client[] {
    return (this.db.query("SELECT * FROM clients WHERE namespace = $namespace ORDER BY name").all({ namespace }) as Row[])
      .map(clientFromRow);
  }

  getExporter(namespace: string, name: string): ExporterRecord | null {
    return this.exporters.get(namespace, name);
  }

  listExporters(namespace?: string): ExporterRecord[] {
    return this.exporters.list(namespace);
  }

  scanExporters(namespace: string): readonly Readonly<ExporterRecord>[] {
    return this.exporters.scan(namespace);
  }

  getLease(namespace: string, name: string): Lease | null {
    const row = this.db.query("SELECT * FROM leases WHERE namespace = $namespace AND name = $name").get({ namespace, name });
    return row ? leaseFromRow(row as Row) : null;
  }

  listLeases(namespace: string | undefined, query: LeaseQuery = {}): Lease[] {
    const where: string[] = [];
    const params: Row = {};
    if (namespace !== undefined) {
      where.push("namespace = $namespace");
      params.namespace = namespace;
    }
    if (query.client !== undefined) {
      where.push("client = $client");
      params.client = query.client;
    }
    if (query.onlyActive) where.push("ended = 0");
    const sql = `SELECT * FROM leases ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq`;
    return (this.db.query(sql).all(params) as Row[]).map(leaseFromRow);
  }

  listPolicies(namespace: string): AccessPolicy[] {
    const rows = this.db.query("SELECT * FROM access_policies WHERE namespace = $namespace ORDER BY name").all({ namespace }) as Row[];
    return rows.map((r) => policyFromRow(r));
  }

  /** Drops entries older than the retention's age, then the oldest beyond its count. */
  private pruneAudit(): void {
    this.appendedSincePrune = 0;
    this.db.query("DELETE FROM audit WHERE at < $cutoff").run({ cutoff: Date.now() - this.retention.maxAgeMs });
    this.db.query("DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET $keep)")
      .run({ keep: this.retention.maxEntries });
  }

  listAudit(q: AuditQuery): Promise<AuditEntry[]> {
    const where = ["(namespace = $namespace OR namespace = '')"];
    const params: Row = { namespace: q.namespace };
    if (q.since !== undefined) {
      where.push("at >= $since");
      params.since = q.since;
    }
    if (q.client !== undefined) {
      where.push("(client = $client OR actor = $clientActor)");
      params.client = q.client;
      params.clientActor = actorOf("Client", q.client);
    }
    if (q.exporter !== undefined) {
      where.push("(exporter = $exporter OR actor = $exporterActor)");
      params.exporter = q.exporter;
      params.exporterActor = actorOf("Exporter", q.exporter);
    }
    if (q.lease !== undefined) {
      where.push("lease = $lease");
      params.lease = q.lease;
    }
    const limit = q.limit !== undefined ? ` LIMIT ${Math.max(0, Math.trunc(q.limit))}` : "";
    const rows = this.db.query(`SELECT * FROM audit WHERE ${where.join(" AND ")} ORDER BY seq DESC${limit}`).all(params) as Row[];
    return Promise.resolve(rows.reverse().map(auditFromRow));
  }

  /** Every write is in its transaction's commit: nothing waits. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.db.close();
  }
}

function auditFromRow(r: Row): AuditEntry {
  const entry: AuditEntry = {
    seq: r.seq as number, at: r.at as number, namespace: r.namespace as string, action: r.action as AuditAction,
    actor: r.actor as string, reason: r.reason as string, detail: r.detail as string,
  };
  if (r.lease !== null) entry.lease = r.lease as string;
  if (r.client !== null) entry.client = r.client as string;
  if (r.exporter !== null) entry.exporter = r.exporter as string;
  return entry;
}
