import { afterEach, beforeEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AccessPolicy } from "../../common/access-policy.ts";
import { parseSelector } from "../../common/selector.ts";
import { ExporterStatus } from "../../gen/jumpstarter/v1/common_pb.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";
import { DATABASE_FILE, SCHEMA_VERSION, SqliteStore } from "./sqlite.ts";
import { OUTSIDE_TRANSACTION_CHECK_MS } from "./sqlite-cache.ts";
import type { StoreWriter } from "./store.ts";

let dir: string;
let store: SqliteStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "jmp-store-"));
  store = SqliteStore.open(join(dir, "data"));
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Past the time in which a read outside a transaction may miss another connection's commit. */
const later = () => Bun.sleepSync(OUTSIDE_TRANSACTION_CHECK_MS + 1);

/** One write in a transaction of its own. */
const write = <T>(fn: (w: StoreWriter) => T, on: SqliteStore = store): T => on.transactionSync(fn);

const client = (name: string): Client => ({
  namespace: "default",
  name,
  uid: `uid-${name}`,
  labels: { team: "a" },
  tokenId: "t1",
  createdAt: 1,
});

const exporter = (name: string): ExporterRecord => ({
  namespace: "default",
  name,
  uid: `uid-${name}`,
  labels: { board: "rpi4" },
  enabled: true,
  disabledReason: "",
  health: null,
  tokenId: "t1",
  devices: [{ uuid: "u1", labels: { "jumpstarter.dev/client": "x.Y" }, methodsDescription: { on: "Power on" } }],
  status: ExporterStatus.AVAILABLE,
  statusMessage: "ok",
  registered: true,
  lastSeen: 5,
  leaseName: null,
  createdAt: 1,
});

const lease = (name: string, extra: Partial<Lease> = {}): Omit<Lease, "seq"> => ({
  namespace: "default",
  name,
  client: "c1",
  selector: "board=rpi4",
  duration: 60_000,
  allowDisabled: false,
  tags: {},
  context: {},
  released: false,
  ended: false,
  conditions: [],
  createdAt: 1,
  ...extra,
});

test("creates <dataDir>/jumpstarter.db in WAL mode at the current schema version, and reopens it", () => {
  expect(store.path).toBe(join(dir, "data", DATABASE_FILE));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  write((w) => w.createClient(client("c1")));
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  expect(raw.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(store.getClient("default", "c1")?.uid).toBe("uid-c1");
});

test("refuses a file written by a newer schema", () => {
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.query("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)").run();
  raw.close();
  expect(() => SqliteStore.open(join(dir, "data"))).toThrow(`has schema version 99, newer than this jmp understands (${SCHEMA_VERSION})`);
  store = SqliteStore.open(join(dir, "other"));
});

/** What migrations 4 and 5 added, dropped again to make a file as an older jmp wrote it. */
const DROP_MIGRATION_6 = "DROP TABLE audit;";
const DROP_MIGRATION_5 = `${DROP_MIGRATION_6} DROP TABLE access_policies; ALTER TABLE leases DROP COLUMN priority; ALTER TABLE leases DROP COLUMN spot_access;`;
const DROP_MIGRATION_4 = `${DROP_MIGRATION_5} ALTER TABLE exporters DROP COLUMN disabled_reason; ALTER TABLE exporters DROP COLUMN health;`;

test("a version 1 file is migrated in place: its leases keep their data and gain an empty presence timeout", () => {
  write((w) => w.createLease(lease("old")));
  store.close();
  // Turn the file back into what jmp wrote before migration 2.
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.exec(`ALTER TABLE leases DROP COLUMN presence_timeout; ALTER TABLE leases DROP COLUMN dialed_at; ${DROP_MIGRATION_4}
    DELETE FROM schema_version WHERE version > 1`);
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(store.getLease("default", "old")).toMatchObject({ ...lease("old"), presenceTimeout: undefined });
  const created = write((w) => w.createLease(lease("new", { presenceTimeout: 30_000 })));
  expect(store.getLease("default", "new")).toEqual(created);
});

test("a version 2 file is migrated: its open leases that have an exporter count as dialled, the rest do not", () => {
  write((w) => w.createLease(lease("held", { exporter: "pi-1", effectiveBeginTime: 7 })));
  write((w) => w.createLease(lease("waiting", { presenceTimeout: 30_000 })));
  write((w) => w.createLease(lease("over", { exporter: "pi-2", effectiveBeginTime: 3, ended: true })));
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.exec(`ALTER TABLE leases DROP COLUMN dialed_at; ${DROP_MIGRATION_4} DELETE FROM schema_version WHERE version > 2`);
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(["held", "waiting", "over"].map((n) => store.getLease("default", n)?.dialedAt)).toEqual([7, undefined, undefined]);
  write((w) => w.updateLease({ ...store.getLease("default", "waiting")!, dialedAt: 9 }));
  expect(store.getLease("default", "waiting")?.dialedAt).toBe(9);
});

test("a version 3 file is migrated: its exporters are enabled with no reason and no health check, and keep the rest", () => {
  write((w) => w.createExporter({ ...exporter("pi-1"), enabled: false }));
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.exec(`${DROP_MIGRATION_4} DELETE FROM schema_version WHERE version > 3`);
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(store.getExporter("default", "pi-1")).toEqual({ ...exporter("pi-1"), enabled: false });
  const health = { state: "unhealthy" as const, message: "no console", checkId: "c1", checkedAt: 5, overridden: false };
  write((w) => w.updateExporter({ ...exporter("pi-1"), enabled: false, disabledReason: "reflashing", health }));
  store.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.getExporter("default", "pi-1")).toEqual({ ...exporter("pi-1"), enabled: false, disabledReason: "reflashing", health });
});

test("clients and exporters round-trip, per namespace", () => {
  write((w) => w.createClient(client("c1")));
  write((w) => w.createClient({ ...client("c1"), namespace: "lab2", uid: "other" }));
  write((w) => w.updateClient({ ...client("c1"), tokenId: "t2" }));
  expect(store.getClient("default", "c1")).toEqual({ ...client("c1"), tokenId: "t2" });
  expect(store.listClients("lab2").map((c) => c.uid)).toEqual(["other"]);
  write((w) => w.deleteClient("default", "c1"));
  expect(store.getClient("default", "c1")).toBeNull();

  write((w) => w.createExporter(exporter("b")));
  write((w) => w.createExporter(exporter("a")));
  write((w) => w.updateExporter({ ...exporter("a"), leaseName: "l1", lastSeen: null, enabled: false }));
  expect(store.getExporter("default", "a")).toEqual({ ...exporter("a"), leaseName: "l1", lastSeen: null, enabled: false });
  expect(store.listExporters("default").map((e) => e.name)).toEqual(["a", "b"]);
  expect(store.listExporters().length).toBe(2);
  write((w) => w.setLastSeen("default", ["b", "gone"], 99));
  expect(store.getExporter("default", "b")).toEqual({ ...exporter("b"), lastSeen: 99 });
  write((w) => w.deleteExporter("default", "b"));
  expect(store.listExporters("default").map((e) => e.name)).toEqual(["a"]);
  expect(() => write((w) => w.updateExporter(exporter("gone")))).toThrow("no exporters row default/gone to update");
});

test("leases round-trip with optional fields, in creation order with increasing seq", () => {
  const full = lease("l1", {
    exporterName: "a",
    beginTime: 10,
    endTime: 20,
    tags: { ci: "yes" },
    context: { build: "42" },
    exporter: "a",
    effectiveBeginTime: 11,
    conditions: [{ type: "Ready", status: "True", reason: "Ready", message: "m", lastTransitionTime: 11 }],
  });
  const l1 = write((w) => w.createLease(full));
  const l2 = write((w) => w.createLease(lease("l2", { client: "c2" })));
  expect(l2.seq).toBeGreaterThan(l1.seq);
  expect(store.getLease("default", "l1")).toEqual({ ...full, seq: l1.seq });
  expect(store.getLease("default", "l2")).toEqual({ ...lease("l2", { client: "c2" }), seq: l2.seq });
  write((w) => w.updateLease({ ...l1, ended: true, effectiveEndTime: 15 }));
  expect(store.listLeases("default").map((l) => l.name)).toEqual(["l1", "l2"]);
  expect(store.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l2"]);
  expect(store.listLeases("default", { client: "c2" }).map((l) => l.name)).toEqual(["l2"]);
  expect(store.listLeases("elsewhere")).toEqual([]);
});

test("the store itself refuses a second open lease on one exporter", () => {
  write((w) => w.createLease(lease("l1", { exporter: "a" })));
  expect(() => write((w) => w.createLease(lease("l2", { exporter: "a" })))).toThrow("UNIQUE constraint failed");
  write((w) => w.createLease(lease("l3", { exporter: "a", ended: true })));
});

test("transaction commits, rolls back on throw, and nested calls join the outer one", () => {
  store.transactionSync((w) => {
    w.createClient(client("c1"));
    store.transactionSync((inner) => inner.createClient(client("c2")));
  });
  expect(() =>
    store.transactionSync((w) => {
      w.createClient(client("c3"));
      throw new Error("boom");
    }),
  ).toThrow("boom");
  expect(store.listClients("default").map((c) => c.name)).toEqual(["c1", "c2"]);
});

test("a second process's writer waits for BEGIN IMMEDIATE and gives up after busy_timeout", () => {
  const other = new SqliteStore(store.path, { busyTimeoutMs: 50 });
  try {
    store.transactionSync((w) => {
      w.createClient(client("c1"));
      const started = performance.now();
      expect(() => other.transactionSync((o) => o.createClient(client("c2")))).toThrow("database is locked");
      expect(performance.now() - started).toBeGreaterThanOrEqual(40);
    });
    other.transactionSync((o) => o.createClient(client("c2")));
    expect(store.listClients("default").map((c) => c.name)).toEqual(["c1", "c2"]);
  } finally {
    other.close();
  }
});

test("exporters read from memory stay true to the file: copies, scans, rollbacks and another connection's writes", () => {
  write((w) => w.createExporter(exporter("a")));
  const read = store.getExporter("default", "a")!;
  read.status = ExporterStatus.OFFLINE;
  expect(store.getExporter("default", "a")!.status).toBe(ExporterStatus.AVAILABLE);
  // Copies share the nested labels and reports with the cache, so those cannot be edited in place.
  expect(() => {
    read.labels.board = "other";
  }).toThrow();
  expect(() => store.transactionSync((w) => {
    w.updateExporter({ ...exporter("a"), status: ExporterStatus.OFFLINE });
    w.createExporter(exporter("b"));
    throw new Error("boom");
  })).toThrow("boom");
  expect(store.listExporters("default")).toEqual([exporter("a")]);

  // Scans hand out the stored records themselves, by name, each write showing in the next scan.
  write((w) => w.createExporter(exporter("0")));
  write((w) => w.updateExporter({ ...exporter("a"), leaseName: "l0" }));
  const scan = store.scanExporters("default");
  expect(scan.map((e) => [e.name, e.leaseName])).toEqual([["0", null], ["a", "l0"]]);
  expect(() => {
    (scan[0] as ExporterRecord).leaseName = "x";
  }).toThrow();
  write((w) => w.deleteExporter("default", "0"));
  write((w) => w.updateExporter(exporter("a")));
  expect(store.scanExporters("default")).toEqual([exporter("a")]);
  expect(store.scanExporters("elsewhere")).toEqual([]);

  const other = new SqliteStore(store.path);
  try {
    write((w) => w.updateExporter({ ...exporter("a"), leaseName: "l1" }), other);
    write((w) => w.setLastSeen("default", ["a"], 7));
    later();
    expect(other.getExporter("default", "a")).toEqual({ ...exporter("a"), leaseName: "l1", lastSeen: 7 });
    write((w) => w.createExporter(exporter("c")), other);
    later();
    expect(store.getExporter("default", "a")!.leaseName).toBe("l1");
    expect(store.listExporters().map((e) => e.name)).toEqual(["a", "c"]);
    write((w) => w.deleteExporter("default", "c"), other);
    later();
    expect(store.getExporter("default", "c")).toBeNull();
    // A transaction checks once, as it takes the write lock, and reads what was committed before it.
    store.getExporter("default", "a");
    write((w) => w.updateExporter({ ...exporter("a"), leaseName: "l2" }), other);
    expect(store.transactionSync(() => [store.getExporter("default", "a")!.leaseName, store.scanExporters("default")[0]!.leaseName]))
      .toEqual(["l2", "l2"]);
    write((w) => w.updateExporter({ ...exporter("a"), leaseName: "l3" }), other);
    later();
    expect(store.getExporter("default", "a")!.leaseName).toBe("l3");
  } finally {
    other.close();
  }
});

test("an exporter write that passes its cached labels and reports along keeps them, and the file gets their text", () => {
  write((w) => w.createExporter(exporter("a")));
  const before = store.scanExporters("default")[0]!;
  write((w) => w.updateExporter({ ...store.getExporter("default", "a")!, status: ExporterStatus.LEASE_READY }));
  const after = store.scanExporters("default")[0]!;
  expect(after.status).toBe(ExporterStatus.LEASE_READY);
  // Not parsed again: the very same (frozen) values.
  expect(after.labels).toBe(before.labels);
  expect(after.devices).toBe(before.devices);
  write((w) => w.updateExporter({ ...store.getExporter("default", "a")!, labels: { board: "rpi5" } }));
  const relabelled = store.scanExporters("default")[0]!;
  expect(relabelled.labels).toEqual({ board: "rpi5" });
  expect(relabelled.devices).toBe(before.devices);
  const db = new Database(join(dir, "data", DATABASE_FILE), { readonly: true });
  try {
    const row = db.query("SELECT labels, devices, status FROM exporters WHERE name = 'a'").get() as Record<string, unknown>;
    expect(row).toEqual({ labels: JSON.stringify({ board: "rpi5" }), devices: JSON.stringify(exporter("a").devices), status: ExporterStatus.LEASE_READY });
  } finally {
    db.close();
  }
});

test("clients and access policies read from memory stay true to the file: copies, rollbacks and another connection's writes", () => {
  const policy = (name: string, priority: number): AccessPolicy => ({
    namespace: "default", name, exporterSelector: parseSelector("board=rpi4"), policies: [{ description: "", priority, spotAccess: false, from: [parseSelector("team=a")] }],
  });
  write((w) => {
    w.createClient(client("alice"));
    w.putPolicy(policy("p", 1));
  });
  const read = store.getClient("default", "alice")!;
  read.labels.team = "changed";
  expect(store.getClient("default", "alice")).toEqual(client("alice"));
  expect(() => store.transactionSync((w) => {
    w.updateClient({ ...client("alice"), tokenId: "rotated" });
    w.createClient(client("bob"));
    w.putPolicy(policy("p", 2));
    expect(store.getClient("default", "alice")!.tokenId).toBe("rotated");
    expect(store.listPolicies("default")[0]!.policies[0]!.priority).toBe(2);
    throw new Error("boom");
  })).toThrow("boom");
  expect(store.getClient("default", "alice")!.tokenId).toBe("t1");
  expect(store.getClient("default", "bob")).toBeNull();
  expect(store.listPolicies("default")).toEqual([policy("p", 1)]);

  const other = new SqliteStore(store.path);
  try {
    expect(other.getClient("default", "alice")).toEqual(client("alice"));
    write((w) => {
      w.updateClient({ ...client("alice"), tokenId: "rotated" });
      w.putPolicy(policy("q", 3));
    }, other);
    later();
    // A rotated token is refused at once by the replica that did not rotate it.
    expect(store.getClient("default", "alice")!.tokenId).toBe("rotated");
    expect(store.listPolicies("default").map((p) => p.name)).toEqual(["p", "q"]);
    write((w) => {
      w.deleteClient("default", "alice");
      w.deletePolicy("default", "p");
    });
    later();
    expect(other.getClient("default", "alice")).toBeNull();
    expect(other.listPolicies("default").map((p) => p.name)).toEqual(["q"]);
    expect(store.listPolicies("elsewhere")).toEqual([]);
  } finally {
    other.close();
  }
});

test("a transaction refused before any write keeps what is in memory; one that wrote drops it", () => {
  write((w) => w.createExporter(exporter("a")));
  const cached = store.scanExporters("default")[0];
  // Scans hand out the cached records themselves: the same object means nothing was parsed again.
  expect(() => store.transactionSync(() => {
    throw new Error("lease 'x' has already been released");
  })).toThrow("already been released");
  expect(store.scanExporters("default")[0]).toBe(cached!);
  expect(() => store.transactionSync((w) => {
    w.updateExporter({ ...exporter("a"), leaseName: "l1" });
    throw new Error("boom");
  })).toThrow("boom");
  expect(store.scanExporters("default")[0]).not.toBe(cached!);
  expect(store.scanExporters("default")[0]).toEqual(cached!);
  // A write that fails half-way counts as a write.
  expect(() => store.transactionSync((w) => w.createExporter(exporter("a")))).toThrow("UNIQUE");
  expect(store.getExporter("default", "a")).toEqual(exporter("a"));
});

test("open leases read from memory stay true to the file: copies, seq order, ends, rollbacks and another connection's writes", () => {
  write((w) => {
    w.createLease(lease("l1"));
    w.createLease(lease("l2", { client: "c2" }));
  });
  // Reads are copies the caller may change, nested values too, without changing the store.
  const read = store.getLease("default", "l1")!;
  read.tags.x = "y";
  read.conditions.push({ type: "Ready", status: "True", reason: "R", message: "", lastTransitionTime: 0 });
  read.selector = "changed";
  expect(store.getLease("default", "l1")).toMatchObject({ tags: {}, conditions: [], selector: "board=rpi4" });
  expect(store.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l1", "l2"]);
  expect(store.listLeases("default", { onlyActive: true, client: "c2" }).map((l) => l.name)).toEqual(["l2"]);

  // An update keeps a lease's place; an end takes it out of the open ones, not out of the file.
  const l1 = store.getLease("default", "l1")!;
  write((w) => w.updateLease({ ...l1, exporter: "e1" }));
  expect(store.listLeases("default", { onlyActive: true }).map((l) => [l.name, l.exporter])).toEqual([["l1", "e1"], ["l2", undefined]]);
  write((w) => w.updateLease({ ...store.getLease("default", "l2")!, ended: true }));
  expect(store.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l1"]);
  expect(store.getLease("default", "l2")?.ended).toBe(true);
  expect(store.listLeases("default").map((l) => l.name)).toEqual(["l1", "l2"]);

  expect(() => store.transactionSync((w) => {
    w.createLease(lease("l3"));
    w.updateLease({ ...store.getLease("default", "l1")!, ended: true });
    expect(store.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l3"]);
    throw new Error("boom");
  })).toThrow("boom");
  expect(store.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l1"]);
  expect(store.getLease("default", "l3")).toBeNull();

  const other = new SqliteStore(store.path);
  try {
    expect(other.listLeases("default", { onlyActive: true }).map((l) => l.name)).toEqual(["l1"]);
    write((w) => w.createLease(lease("l4", { namespace: "elsewhere" })), other);
    write((w) => w.updateLease({ ...other.getLease("default", "l1")!, dialedAt: 9 }), other);
    later();
    expect(store.getLease("default", "l1")!.dialedAt).toBe(9);
    expect(store.listLeases(undefined, { onlyActive: true }).map((l) => `${l.namespace}/${l.name}`)).toEqual(["default/l1", "elsewhere/l4"]);
    write((w) => w.updateLease({ ...store.getLease("elsewhere", "l4")!, ended: true }));
    later();
    expect(other.listLeases(undefined, { onlyActive: true }).map((l) => l.name)).toEqual(["l1"]);
    expect(other.getLease("elsewhere", "l4")?.ended).toBe(true);
  } finally {
    other.close();
  }
});

test("a version 4 file is migrated: no access policies, and its leases have no priority and no spot access", () => {
  write((w) => w.createLease(lease("held", { exporter: "pi-1", effectiveBeginTime: 7 })));
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.exec(`${DROP_MIGRATION_5} DELETE FROM schema_version WHERE version > 4`);
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(store.listPolicies("default")).toEqual([]);
  expect(store.getLease("default", "held")).toMatchObject({ priority: undefined, spotAccess: undefined });
  write((w) => w.updateLease({ ...store.getLease("default", "held")!, priority: 5, spotAccess: true }));
  expect(store.getLease("default", "held")).toMatchObject({ priority: 5, spotAccess: true });
});

test("a version 5 file is migrated: its audit log starts empty and takes entries", async () => {
  write((w) => w.createLease(lease("held", { exporter: "pi-1", effectiveBeginTime: 7 })));
  store.close();
  const raw = new Database(join(dir, "data", DATABASE_FILE));
  raw.exec(`${DROP_MIGRATION_6} DELETE FROM schema_version WHERE version > 5`);
  raw.close();
  store = SqliteStore.open(join(dir, "data"));
  expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(await store.listAudit({ namespace: "default" })).toEqual([]);
  write((w) => w.appendAudit({ at: 1, namespace: "default", action: "lease.release", actor: "client/c1", lease: "held", reason: "Released", detail: "" }));
  expect((await store.listAudit({ namespace: "default" })).map((e) => e.lease)).toEqual(["held"]);
});

test("the audit log keeps the newest entries within its count and age, and filters by who and when", async () => {
  store.close();
  const now = Date.now();
  store = SqliteStore.open(join(dir, "data"), { auditRetention: { maxAgeMs: 3_600_000, maxEntries: 300 } });
  write((w) => {
    w.appendAudit({ at: now - 2 * 3_600_000, namespace: "default", action: "client.create", actor: "admin/admin", client: "old", reason: "", detail: "" });
    for (let i = 0; i < 500; i++) {
      w.appendAudit({ at: now + i, namespace: i % 2 ? "default" : "other", action: "lease.create", actor: `client/c${i % 3}`, lease: `l${i}`, client: `c${i % 3}`, reason: "", detail: "" });
    }
  });
  // Pruned every 200 entries: at most 300 + 199 are kept, the oldest gone first, the one past its age at once.
  const all = [...(await store.listAudit({ namespace: "default" })), ...(await store.listAudit({ namespace: "other" }))];
  expect(all.length).toBeLessThan(500);
  expect(all.some((e) => e.client === "old")).toBe(false);
  expect(all.some((e) => e.lease === "l499")).toBe(true);
  expect(all.some((e) => e.lease === "l0")).toBe(false);
  // A reopen prunes to the count exactly.
  store.close();
  store = SqliteStore.open(join(dir, "data"), { auditRetention: { maxAgeMs: 3_600_000, maxEntries: 300 } });
  const kept = [...(await store.listAudit({ namespace: "default" })), ...(await store.listAudit({ namespace: "other" }))];
  expect(kept.length).toBe(300);
  expect(Math.min(...kept.map((e) => Number(e.lease!.slice(1))))).toBe(200);

  const mine = await store.listAudit({ namespace: "default", client: "c1", since: now + 400, limit: 5 });
  expect(mine.map((e) => e.lease)).toEqual(["l463", "l469", "l475", "l481", "l487", "l493", "l499"].slice(-5));
  expect(mine.every((e, i) => i === 0 || e.seq > mine[i - 1]!.seq)).toBe(true);
  // Entries of no namespace (a refused token naming none) answer every namespace's query.
  write((w) => w.appendAudit({ at: now + 1000, namespace: "", action: "token.refuse", actor: "unknown", reason: "malformed", detail: "x" }));
  expect((await store.listAudit({ namespace: "other", since: now + 1000 })).map((e) => e.action)).toEqual(["token.refuse"]);
  // An entry rolled back with its transaction was never written.
  expect(() => store.transactionSync((w) => {
    w.appendAudit({ at: now + 2000, namespace: "default", action: "lease.release", actor: "client/c1", lease: "gone", reason: "", detail: "" });
    throw new Error("boom");
  })).toThrow("boom");
  expect(await store.listAudit({ namespace: "default", lease: "gone" })).toEqual([]);
});

test("the count is kept by seq: a rolled-back append gives its number back, so exactly the newest maxEntries stay", async () => {
  store.close();
  const now = Date.now();
  const retention = { auditRetention: { maxAgeMs: 3_600_000, maxEntries: 250 } };
  store = SqliteStore.open(join(dir, "data"), retention);
  const entry = (i: number) => ({ at: now + i, namespace: "default", action: "lease.create" as const, actor: "client/c1" as const, lease: `l${i}`, reason: "", detail: "" });
  for (let i = 0; i < 600; i++) {
    write((w) => w.appendAudit(entry(i)));
    // Every third append has a twin that is rolled back with its transaction.
    if (i % 3 === 0) expect(() => store.transactionSync((w) => {
      w.appendAudit(entry(10_000 + i));
      throw new Error("no");
    })).toThrow("no");
  }
  store.close();
  store = SqliteStore.open(join(dir, "data"), retention);
  const kept = await store.listAudit({ namespace: "default" });
  expect(kept.length).toBe(250);
  expect(kept.map((e) => e.lease)).toEqual(Array.from({ length: 250 }, (_, i) => `l${350 + i}`));
  // seq counts up by one with no gap left by the rolled-back twins.
  expect(kept.every((e, i) => i === 0 || e.seq === kept[i - 1]!.seq + 1)).toBe(true);
});
