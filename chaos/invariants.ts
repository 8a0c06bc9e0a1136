/**
 * The lease invariants of the restart storm, judged from two sides at once: the
 * controller's SQLite file (read, never written: the controller owns it) and what
 * the clients know. It shares no code with the controller's store on purpose: an
 * oracle that read the file through the code under test would agree with it.
 *
 * - lost: a lease a live client holds or waits for is gone, ended, or someone else's;
 * - double-assigned: an exporter is held by two open leases, its row disagrees with
 *   its lease, or two clients use it at once;
 * - held by a dead client: a lease of a killed client, or one no live client knows
 *   (its creator lost the answer), is still open after the presence rule's time;
 * - FIFO: a lease got an exporter while an older one with the same selector still
 *   waits, or a lease changed its place in the queue.
 * - unaudited (checked once the storm is over): a lease with no `lease.create` entry
 *   in the audit log, or an ended one with no entry saying how it ended.
 */
import { Database } from "bun:sqlite";

export interface LeaseRow {
  seq: number;
  namespace: string;
  name: string;
  client: string;
  selector: string;
  exporterName: string | null;
  exporter: string | null;
  ended: boolean;
  createdAt: number;
  /** The Ready condition's reason (why it ended, for an ended lease). */
  reason: string;
}

export interface ExporterRow {
  namespace: string;
  name: string;
  leaseName: string | null;
}

export interface Snapshot {
  leases: LeaseRow[];
  exporters: ExporterRow[];
}

/**
 * Every open lease and every exporter, in one read transaction: the controller
 * keeps writing meanwhile (WAL), and the snapshot is still one moment of it.
 */
export function readSnapshot(dbFile: string): Snapshot {
  const db = new Database(dbFile, { readonly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    return db.transaction(() => ({
      leases: (db.query(
        "SELECT seq, namespace, name, client, selector, exporter_name, exporter, ended, created_at, conditions FROM leases WHERE ended = 0 ORDER BY seq",
      ).all() as Record<string, string | number | null>[]).map(leaseRow),
      exporters: (db.query("SELECT namespace, name, lease_name FROM exporters").all() as Record<string, string | null>[]).map((r) => ({
        namespace: r.namespace!, name: r.name!, leaseName: r.lease_name ?? null,
      })),
    }))();
  } finally {
    db.close();
  }
}

const END_ACTIONS = new Set(["lease.release", "lease.expire", "lease.revoke", "lease.refuse"]);

/**
 * Every lease of the file against the audit log: each has its creation recorded, each
 * ended one its end, and nothing is recorded twice. The entry is written in the
 * lease's own transaction, so no restart may come between them.
 */
export function checkAudit(dbFile: string): Violation[] {
  const db = new Database(dbFile, { readonly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    return db.transaction(() => {
      const leases = db.query("SELECT namespace, name, client, ended FROM leases").all() as { namespace: string; name: string; client: string; ended: number }[];
      const entries = db.query("SELECT namespace, lease, action FROM audit WHERE lease IS NOT NULL AND action LIKE 'lease.%'").all() as {
        namespace: string; lease: string; action: string;
      }[];
      const byLease = new Map<string, string[]>();
      for (const e of entries) {
        const k = `${e.namespace}/${e.lease}`;
        byLease.set(k, [...(byLease.get(k) ?? []), e.action]);
      }
      const out: Violation[] = [];
      for (const l of leases) {
        const actions = byLease.get(`${l.namespace}/${l.name}`) ?? [];
        const created = actions.filter((a) => a === "lease.create").length;
        const ends = actions.filter((a) => END_ACTIONS.has(a)).length;
        if (created !== 1) out.push({ kind: "unaudited", message: `lease ${l.name} of ${l.client} has ${created} lease.create entries in the audit log` });
        if (l.ended && ends !== 1) out.push({ kind: "unaudited", message: `ended lease ${l.name} of ${l.client} has ${ends} entries saying how it ended` });
        if (!l.ended && ends !== 0) out.push({ kind: "unaudited", message: `open lease ${l.name} of ${l.client} has an entry saying it ended` });
      }
      return out;
    })();
  } finally {
    db.close();
  }
}

/** Named leases with their current rows, ended or not: what became of the leases a check found open. */
export function readLeases(dbFile: string, names: string[]): Map<string, LeaseRow> {
  const db = new Database(dbFile, { readonly: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const q = db.query("SELECT seq, namespace, name, client, selector, exporter_name, exporter, ended, created_at, conditions FROM leases WHERE name = ?");
    const out = new Map<string, LeaseRow>();
    for (const n of names) {
      const r = q.get(n) as Record<string, string | number | null> | null;
      if (r) out.set(n, leaseRow(r));
    }
    return out;
  } finally {
    db.close();
  }
}

function leaseRow(r: Record<string, string | number | null>): LeaseRow {
  const conditions = JSON.parse(String(r.conditions)) as { type: string; reason: string }[];
  return {
    seq: Number(r.seq),
    namespace: String(r.namespace),
    name: String(r.name),
    client: String(r.client),
    selector: String(r.selector),
    exporterName: r.exporter_name === null ? null : String(r.exporter_name),
    exporter: r.exporter === null ? null : String(r.exporter),
    ended: r.ended === 1,
    createdAt: Number(r.created_at),
    reason: conditions.find((c) => c.type === "Ready")?.reason ?? "",
  };
}

export type Phase = "waiting" | "ready" | "using";

/** What the clients know at the moment of a snapshot. */
export interface ClientsView {
  /** Leases live clients hold or wait for, whose phase did not change while the snapshot was read. */
  live: { lease: string; client: string; phase: Phase; exporter?: string }[];
  /** Every lease a live client created and has not given back, whatever its phase (to tell orphans from leases in use). */
  known: Set<string>;
  /** Leases their clients gave up without a confirmed release (the release failed), and since when (epoch ms). */
  forgotten: Map<string, number>;
  /** Leases of clients killed on purpose: each must be gone by its deadline (epoch ms). */
  dead: { lease: string; client: string; deadline: number }[];
  /** Clients that say they are using an exporter now, by exporter. */
  using: Map<string, string[]>;
}

export interface Violation {
  kind: "lost" | "double-assigned" | "held-by-dead" | "fifo" | "unaudited";
  message: string;
}

export interface CheckOptions {
  /** Wall clock of the snapshot, epoch ms. */
  now: number;
  /** When the controller last started, epoch ms: presence clocks start again then. */
  startedAt: number;
  /** How long a lease nobody knows may live (presence timeout + sweep + slack). */
  orphanAfterMs: number;
  /** The queue place (seq) of each lease when first seen; kept and extended across checks. */
  places: Map<string, number>;
}

/** Every broken invariant in this snapshot; empty when all hold. */
export function checkInvariants(snap: Snapshot, view: ClientsView, opts: CheckOptions): Violation[] {
  const out: Violation[] = [];
  const open = new Map(snap.leases.map((l) => [l.name, l]));
  const exporters = new Map(snap.exporters.map((e) => [`${e.namespace}/${e.name}`, e]));

  for (const held of view.live) {
    const row = open.get(held.lease);
    const who = `lease ${held.lease} of ${held.client} (${held.phase}${held.exporter ? ` on ${held.exporter}` : ""})`;
    if (!row) out.push({ kind: "lost", message: `${who} is not open in the database` });
    else if (row.client !== held.client) out.push({ kind: "lost", message: `${who} belongs to ${row.client} in the database` });
    else if (held.phase !== "waiting" && row.exporter === null) out.push({ kind: "lost", message: `${who} has no exporter in the database` });
    else if (held.exporter && row.exporter !== held.exporter) {
      out.push({ kind: "lost", message: `${who} is on ${row.exporter} in the database` });
    }
  }

  const holders = new Map<string, LeaseRow[]>();
  for (const l of snap.leases) {
    if (l.exporter === null) continue;
    const k = `${l.namespace}/${l.exporter}`;
    holders.set(k, [...(holders.get(k) ?? []), l]);
  }
  for (const [k, ls] of holders) {
    if (ls.length > 1) out.push({ kind: "double-assigned", message: `exporter ${k} is held by ${ls.length} open leases: ${ls.map((l) => `${l.name} (${l.client})`).join(", ")}` });
    const row = exporters.get(k);
    if (ls.length === 1 && row?.leaseName !== ls[0]!.name) {
      out.push({ kind: "double-assigned", message: `lease ${ls[0]!.name} holds exporter ${k}, whose row names ${row ? row.leaseName ?? "no lease" : "nothing (no such exporter)"}` });
    }
  }
  for (const e of snap.exporters) {
    if (e.leaseName === null) continue;
    const l = open.get(e.leaseName);
    if (!l || l.namespace !== e.namespace || l.exporter !== e.name) {
      out.push({ kind: "double-assigned", message: `exporter ${e.namespace}/${e.name} names lease ${e.leaseName}, which ${l ? `holds ${l.exporter ?? "no exporter"}` : "is not open"}` });
    }
  }
  for (const [exporter, clients] of view.using) {
    if (clients.length > 1) out.push({ kind: "double-assigned", message: `clients ${clients.join(" and ")} use exporter ${exporter} at the same time` });
  }

  const deadLeases = new Set(view.dead.map((d) => d.lease));
  for (const d of view.dead) {
    const row = open.get(d.lease);
    if (row && opts.now > d.deadline) {
      out.push({ kind: "held-by-dead", message: `lease ${d.lease} of killed client ${d.client} is still open ${Math.round((opts.now - d.deadline) / 1000)} s after its deadline${row.exporter ? `, holding ${row.exporter}` : ""}` });
    }
  }
  for (const l of snap.leases) {
    if (view.known.has(l.name) || deadLeases.has(l.name)) continue;
    const age = opts.now - Math.max(l.createdAt, opts.startedAt, view.forgotten.get(l.name) ?? 0);
    if (age > opts.orphanAfterMs) {
      out.push({ kind: "held-by-dead", message: `lease ${l.name} of ${l.client}, which no live client knows, is still open after ${Math.round(age / 1000)} s${l.exporter ? `, holding ${l.exporter}` : ", waiting"}` });
    }
  }

  const groups = new Map<string, LeaseRow[]>();
  for (const l of snap.leases) {
    const k = `${l.namespace}\0${l.selector}\0${l.exporterName ?? ""}`;
    groups.set(k, [...(groups.get(k) ?? []), l]);
  }
  for (const ls of groups.values()) {
    const oldestWaiting = ls.find((l) => l.exporter === null);
    if (!oldestWaiting) continue;
    for (const l of ls) {
      if (l.exporter !== null && l.seq > oldestWaiting.seq) {
        out.push({ kind: "fifo", message: `lease ${l.name} (${l.client}) got ${l.exporter} while the older ${oldestWaiting.name} (${oldestWaiting.client}) with the same selector still waits` });
      }
    }
  }
  for (const l of snap.leases) {
    const place = opts.places.get(l.name);
    if (place === undefined) opts.places.set(l.name, l.seq);
    else if (place !== l.seq) out.push({ kind: "fifo", message: `lease ${l.name} moved from place ${place} to ${l.seq} in the queue` });
  }
  return out;
}
