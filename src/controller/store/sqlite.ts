/**
 * The default Store: one SQLite file `<dataDir>/jumpstarter.db` (bun:sqlite, WAL).
 * The schema is versioned: `schema_version` holds the migrations applied, and opening
 * the file applies the missing ones in order, each in its own transaction.
 */
import { Database } from "bun:sqlite";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type AccessPolicy, policySpecDocument } from "../../common/access-policy.ts";
import { UserError } from "../../common/errors.ts";
import { actorOf, type AuditEntry, type AuditQuery, type AuditRetention, DEFAULT_AUDIT_RETENTION } from "../audit.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";
import { ClientCache, ExporterCache, FileVersion, OpenLeaseCache, PolicyCache } from "./sqlite-cache.ts";
import { type CheckpointResult, Checkpointer } from "./sqlite-checkpointer.ts";
import {
  auditFromRow, clientFromRow, clientParams, exporterParams, json, leaseFromRow, leaseParams, type Row,
} from "./sqlite-rows.ts";
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

/** `INSERT INTO t (a, b) VALUES ($a, $b)` for the given column names. */
function insertSql(table: string, columns: string[]): string {
  return `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map((c) => `$${c}`).join(", ")})`;
}

/** `UPDATE t SET a = $a ... WHERE namespace = $namespace AND name = $name`. */
function updateSql(table: string, columns: string[]): string {
  const set = columns.filter((c) => c !== "namespace" && c !== "name").map((c) => `${c} = $${c}`);
  return `UPDATE ${table} SET ${set.join(", ")} WHERE namespace = $namespace AND name = $name`;
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
  private readonly file: FileVersion;
  private readonly exporters: ExporterCache;
  private readonly openLeases: OpenLeaseCache;
  private readonly clients: ClientCache;
  private readonly policies: PolicyCache;
  private readonly writer: StoreWriter;
  private readonly retention: AuditRetention;
  private appendedSincePrune = 0;
  /** The running transaction has called a write (which may have failed half-way). */
  private wrote = false;
  /** Checkpoints the WAL off the event loop; null for a database without one (in memory). */
  private checkpointer: Checkpointer | null = null;
  private closed = false;

  /** Opens (creating if needed) `<dataDir>/jumpstarter.db` and migrates it. */
  static open(dataDir: string, opts: SqliteStoreOptions = {}): SqliteStore {
    mkdirSync(dataDir, { recursive: true });
    return new SqliteStore(join(dataDir, DATABASE_FILE), opts);
  }

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.retention = opts.auditRetention ?? DEFAULT_AUDIT_RETENTION;
    this.db = new Database(path, { create: true, strict: true });
    this.file = new FileVersion(this.db);
    this.exporters = new ExporterCache(this.db, this.file);
    this.openLeases = new OpenLeaseCache(this.db, this.file);
    this.clients = new ClientCache(this.db, this.file);
    this.policies = new PolicyCache(this.db, this.file);
    this.writer = this.makeWriter();
    try {
      this.db.exec(`PRAGMA busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
      const { journal_mode } = this.db.query("PRAGMA journal_mode = WAL").get() as { journal_mode: string };
      this.db.exec("PRAGMA synchronous = NORMAL");
      if (journal_mode === "wal") {
        // Checkpoints run in a worker thread (see sqlite-checkpointer.ts), not in our commits.
        this.db.exec("PRAGMA wal_autocheckpoint = 0");
        // A WAL that grew while checkpoints lagged is cut back to this when it starts over.
        this.db.exec(`PRAGMA journal_size_limit = ${32 * 1024 * 1024}`);
        const db = this.db;
        this.checkpointer = new Checkpointer({
          path,
          checkpointHere: () => db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult,
          fallback: () => {
            if (!this.closed) db.exec("PRAGMA wal_autocheckpoint = 1000");
          },
        });
      }
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
    this.file.locked(true);
    this.wrote = false;
    try {
      result = fn(this.writer);
      this.db.exec("COMMIT");
    } catch (err) {
      // Some failures (e.g. a full disk) make SQLite roll back by itself.
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      // The caches took the writes the rollback undid. A refusal before any write (a
      // lease released twice, a name taken) leaves them true: dropping them there made
      // every such call parse every exporter again.
      if (this.wrote) this.file.dropAll();
      throw err;
    } finally {
      this.file.locked(false);
      this.depth--;
      this.onCommit = null;
    }
    // After the commit, outside its try: whatever a checkpoint meets, this transaction is in.
    this.checkpointer?.committed();
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
    const writes: Omit<StoreWriter, "afterCommit"> = {
      createClient: (client) => {
        const params = clientParams(client);
        this.insert("clients", params);
        this.clients.written(params);
      },
      updateClient: (client) => {
        const params = clientParams(client);
        this.update("clients", params);
        this.clients.written(params);
      },
      deleteClient: (namespace, name) => {
        db.query("DELETE FROM clients WHERE namespace = $namespace AND name = $name").run({ namespace, name });
        this.clients.deleted(namespace, name);
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
        this.openLeases.written(row.seq, params);
        return { ...lease, seq: row.seq };
      },
      updateLease: (lease) => {
        const params = leaseParams(lease);
        this.update("leases", params);
        this.openLeases.written(lease.seq, params);
      },
      putPolicy: (policy) => {
        db.query("INSERT OR REPLACE INTO access_policies (namespace, name, spec) VALUES ($namespace, $name, $spec)")
          .run({ namespace: policy.namespace, name: policy.name, spec: json(policySpecDocument(policy)) });
        this.policies.changed(policy.namespace);
      },
      deletePolicy: (namespace, name) => {
        db.query("DELETE FROM access_policies WHERE namespace = $namespace AND name = $name").run({ namespace, name });
        this.policies.changed(namespace);
      },
      appendAudit: (entry) => {
        this.insert("audit", {
          at: entry.at, namespace: entry.namespace, action: entry.action, actor: entry.actor,
          lease: entry.lease ?? null, client: entry.client ?? null, exporter: entry.exporter ?? null,
          reason: entry.reason, detail: entry.detail,
        });
        if (++this.appendedSincePrune >= PRUNE_EVERY) this.pruneAudit();
      },
    };
    // Each write marks the transaction as one whose rollback must drop the caches.
    const writer = Object.fromEntries(Object.entries(writes).map(([name, write]) => [name, (...args: unknown[]) => {
      this.wrote = true;
      return (write as (...a: unknown[]) => unknown)(...args);
    }])) as unknown as StoreWriter;
    writer.afterCommit = (fn) => {
      if (!this.onCommit) throw new Error("afterCommit outside a transaction");
      this.onCommit.push(fn);
    };
    return writer;
  }

  getClient(namespace: string, name: string): Client | null {
    return this.clients.get(namespace, name);
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

  heldExporters(namespace: string): ReadonlyMap<string, string> {
    return this.exporters.held(namespace);
  }

  getLease(namespace: string, name: string): Lease | null {
    const open = this.openLeases.get(namespace, name);
    if (open) return open;
    const row = this.db.query("SELECT * FROM leases WHERE namespace = $namespace AND name = $name").get({ namespace, name });
    return row ? leaseFromRow(row as Row) : null;
  }

  listLeases(namespace: string | undefined, query: LeaseQuery = {}): Lease[] {
    if (query.onlyActive) return this.openLeases.list(namespace, query.client);
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
    const sql = `SELECT * FROM leases ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq`;
    return (this.db.query(sql).all(params) as Row[]).map(leaseFromRow);
  }

  listPolicies(namespace: string): AccessPolicy[] {
    return this.policies.list(namespace);
  }

  /**
   * Drops entries older than the retention's age, then those whose seq is not among
   * the newest maxEntries. The seqs count up by one (AUTOINCREMENT; a rolled-back
   * append gives its number back), so the newest maxEntries are those above MAX(seq) -
   * maxEntries: two lookups at the end of the table. The count is exact unless the age
   * pass removed an entry from the middle (a clock that stepped back); then fewer are
   * kept, never more. The way before, `ORDER BY seq DESC LIMIT 1 OFFSET maxEntries`,
   * stepped through up to maxEntries rows on every prune: a controller whose log had
   * filled (100 000 entries, ~33 000 leases) read the whole table, through SQLite's
   * 2 MiB page cache, every PRUNE_EVERY appends.
   */
  private pruneAudit(): void {
    this.appendedSincePrune = 0;
    this.db.query("DELETE FROM audit WHERE at < $cutoff").run({ cutoff: Date.now() - this.retention.maxAgeMs });
    this.db.query("DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - $keep").run({ keep: this.retention.maxEntries });
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
    if (this.closed) return;
    this.closed = true;
    this.checkpointer?.close();
    this.db.close();
  }

  /** The background checkpointer, for tests. */
  get walCheckpointer(): Checkpointer | null {
    return this.checkpointer;
  }
}
