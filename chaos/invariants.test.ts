/**
 * The checker against a database the controller's own state code wrote, then
 * broken by hand in a copy, once per invariant: each check must say what broke.
 */
import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Harness, NS } from "../src/controller/state-harness.ts";
import { checkAudit, type ClientsView, checkInvariants, readSnapshot, type Violation } from "./invariants.ts";

let h: Harness;
let dir: string;
let db: string;
let now: number;

/** alice holds board-1 (a), bob and carol wait for a board=x (b, c), dave waits for any board-2 (d). */
beforeEach(async () => {
  h = new Harness();
  await h.onlineExporter("board-1", { board: "x" });
  await h.state.createExporter(NS, "board-2", { board: "y" });
  for (const c of ["alice", "bob", "carol", "dave"]) await h.state.createClient(NS, c);
  await h.state.createLease(NS, "alice", { selector: "board=x", duration: 600_000 }, "a");
  await h.state.createLease(NS, "bob", { selector: "board=x", duration: 600_000 }, "b");
  await h.state.createLease(NS, "carol", { selector: "board=x", duration: 600_000 }, "c");
  await h.state.createLease(NS, "dave", { selector: "board=y", duration: 600_000 }, "d");
  now = h.clock.now();
  h.crash();
  dir = mkdtempSync(join(tmpdir(), "jmp-chaos-check-"));
  db = join(dir, "copy.db");
  copyFileSync(join(h.dir, "jumpstarter.db"), db);
});

afterEach(async () => {
  h.close();
  rmSync(dir, { recursive: true, force: true });
});

function edit(sql: string): void {
  const d = new Database(db);
  d.exec(sql);
  d.close();
}

function view(change: Partial<ClientsView> = {}): ClientsView {
  return {
    live: [
      { lease: "a", client: "alice", phase: "using", exporter: "board-1" },
      { lease: "b", client: "bob", phase: "waiting" },
      { lease: "c", client: "carol", phase: "waiting" },
      { lease: "d", client: "dave", phase: "waiting" },
    ],
    known: new Set(["a", "b", "c", "d"]),
    forgotten: new Map(),
    dead: [],
    using: new Map([["board-1", ["alice"]]]),
    ...change,
  };
}

function check(v: ClientsView = view(), places = new Map<string, number>(), at = now): Violation[] {
  return checkInvariants(readSnapshot(db), v, { now: at, startedAt: now - 60_000, orphanAfterMs: 40_000, places });
}

describe("the chaos checker", () => {
  test("finds nothing wrong in what the controller wrote", async () => {
    expect(check()).toEqual([]);
    expect(checkAudit(db)).toEqual([]);
  });

  test("a lease whose creation is not in the audit log, or that ended without an entry saying how, is unaudited", async () => {
    edit(`DELETE FROM audit WHERE lease = 'b' AND action = 'lease.create';
          UPDATE leases SET ended = 1 WHERE name = 'c';
          INSERT INTO audit (at, namespace, action, actor, lease, client, reason, detail) VALUES (1, '${NS}', 'lease.expire', 'controller', 'd', 'dave', 'Expired', '')`);
    expect(checkAudit(db)).toEqual([
      { kind: "unaudited", message: "lease b of bob has 0 lease.create entries in the audit log" },
      { kind: "unaudited", message: "ended lease c of carol has 0 entries saying how it ended" },
      { kind: "unaudited", message: "open lease d of dave has an entry saying it ended" },
    ]);
  });

  test("a waiting lease that is gone, one that ended, and one given to another client are lost", async () => {
    edit("DELETE FROM leases WHERE name = 'b'; UPDATE leases SET ended = 1 WHERE name = 'c'; UPDATE leases SET client = 'bob' WHERE name = 'd'");
    expect(check()).toEqual([
      { kind: "lost", message: "lease b of bob (waiting) is not open in the database" },
      { kind: "lost", message: "lease c of carol (waiting) is not open in the database" },
      { kind: "lost", message: "lease d of dave (waiting) belongs to bob in the database" },
    ]);
  });

  test("a lease in use that the database says waits, or holds another exporter, is lost", async () => {
    edit("UPDATE exporters SET lease_name = NULL; UPDATE leases SET exporter = NULL WHERE name = 'a'");
    expect(check()).toEqual([{ kind: "lost", message: "lease a of alice (using on board-1) has no exporter in the database" }]);
  });

  test("two open leases on one exporter are double-assigned, and so is an exporter row naming the wrong lease", async () => {
    // The unique index would refuse it: a damaged file, or a controller that lost it.
    edit("DROP INDEX leases_one_open_per_exporter; UPDATE leases SET exporter = 'board-1' WHERE name = 'd'");
    const found = check(view({ live: [] }));
    expect(found.map((v) => v.kind)).toEqual(["double-assigned"]);
    expect(found[0]!.message).toBe("exporter default/board-1 is held by 2 open leases: a (alice), d (dave)");
    edit("UPDATE leases SET exporter = NULL WHERE name = 'd'; UPDATE exporters SET lease_name = 'b' WHERE name = 'board-1'");
    expect(check(view({ live: [] })).map((v) => v.message)).toEqual([
      "lease a holds exporter default/board-1, whose row names b",
      "exporter default/board-1 names lease b, which holds no exporter",
    ]);
  });

  test("two clients using one exporter are double-assigned", async () => {
    expect(check(view({ using: new Map([["board-1", ["alice", "bob"]]]) }))).toEqual([
      { kind: "double-assigned", message: "clients alice and bob use exporter board-1 at the same time" },
    ]);
  });

  test("a killed client's lease is held by a dead client once its deadline has passed, not before", async () => {
    const v = view({ live: [], known: new Set(["a", "b", "d"]), dead: [{ lease: "c", client: "carol", deadline: now + 1000 }] });
    expect(check(v)).toEqual([]);
    expect(check(v, new Map(), now + 3000)).toEqual([
      { kind: "held-by-dead", message: "lease c of killed client carol is still open 2 s after its deadline" },
    ]);
  });

  test("a lease no live client knows is held by a dead client after the presence bound, counted from when it was forgotten", async () => {
    const v = view({ live: [], known: new Set(["a", "b", "c"]) });
    expect(check(v, new Map(), now + 30_000)).toEqual([]);
    expect(check(v, new Map(), now + 41_000)).toEqual([
      { kind: "held-by-dead", message: "lease d of dave, which no live client knows, is still open after 41 s, waiting" },
    ]);
    expect(check({ ...v, forgotten: new Map([["d", now + 20_000]]) }, new Map(), now + 41_000)).toEqual([]);
  });

  test("a newer lease served before an older one with the same selector breaks FIFO, and so does a lease that changed its place", async () => {
    edit("UPDATE exporters SET lease_name = 'c' WHERE name = 'board-1'; UPDATE leases SET exporter = NULL WHERE name = 'a'; UPDATE leases SET exporter = 'board-1' WHERE name = 'c'");
    expect(check(view({ live: [] }))).toEqual([
      { kind: "fifo", message: "lease c (carol) got board-1 while the older a (alice) with the same selector still waits" },
    ]);
    const places = new Map<string, number>();
    check(view({ live: [] }), places);
    edit("UPDATE leases SET seq = 100 WHERE name = 'd'");
    expect(check(view({ live: [] }), places).filter((v) => v.message.includes("moved"))).toEqual([
      { kind: "fifo", message: "lease d moved from place 4 to 100 in the queue" },
    ]);
  });
});
