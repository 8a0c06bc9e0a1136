/**
 * The Store contract: the rules written at the top of store.ts and those the state
 * machine relies on, as one suite that each backend's test file runs
 * (sqlite-contract.test.ts, kubernetes/contract.test.ts). A backend gives two handles
 * on the same data: `store`, and `peer` (another process on the same SQLite file,
 * another controller replica on the same cluster), which may see a commit a moment
 * later (a watch), hence `until`.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ExporterStatus } from "../../gen/jumpstarter/v1/common_pb.ts";
import type { AccessPolicy } from "../../common/access-policy.ts";
import { parseSelector } from "../../common/selector.ts";
import type { NewAuditEntry } from "../audit.ts";
import type { Client, ExporterRecord, Lease } from "../model.ts";
import type { Store, StoreWriter } from "./store.ts";

export interface Backend {
  /** Opens `store` and `peer` on fresh, empty data in namespace `ns`. */
  open(ns: string): Promise<{ store: Store; peer: Store }>;
  close(): Promise<void>;
}

const NS = "lab";
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export const client = (name: string): Client => ({ namespace: NS, name, uid: `uid-${name}`, labels: { team: "a" }, tokenId: `tok-${name}`, createdAt: T0 + 1 });

export const exporter = (name: string, extra: Partial<ExporterRecord> = {}): ExporterRecord => ({
  namespace: NS, name, uid: `uid-${name}`, labels: { board: "rpi4" }, enabled: true, disabledReason: "", health: null,
  tokenId: `tok-${name}`, devices: [], status: ExporterStatus.UNSPECIFIED, statusMessage: "", registered: false,
  lastSeen: null, leaseName: null, createdAt: T0 + 2, ...extra,
});

export const lease = (name: string, extra: Partial<Lease> = {}): Omit<Lease, "seq"> => ({
  namespace: NS, name, client: "alice", selector: "board=rpi4", allowDisabled: false, tags: {}, context: {},
  released: false, ended: false, conditions: [], createdAt: T0 + 3, ...extra,
});

/** Polls until `check` stops throwing (a peer's cache follows a watch), or fails with its last error. */
export async function until(check: () => void | Promise<void>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await Bun.sleep(20);
    }
  }
}

const write = <T>(store: Store, fn: (w: StoreWriter) => T) => store.transaction(fn);

export function storeContract(name: string, backend: Backend): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let peer: Store;

    beforeEach(async () => {
      ({ store, peer } = await backend.open(NS));
    });
    afterEach(() => backend.close());

    test("every field of a client, an exporter and a lease reads back as written, also from the peer", async () => {
      const e = exporter("pi-1", {
        labels: { board: "rpi4", "jumpstarter.dev/name": "pi-1" },
        enabled: false,
        disabledReason: "reflashing",
        health: { state: "unhealthy", message: "no login prompt", checkId: "run-1", checkedAt: T0 + 5, overridden: true },
        devices: [
          { uuid: "d1", labels: { "jumpstarter.dev/client": "Power" }, description: "power switch", methodsDescription: { on: "turns it on" } },
          { uuid: "d2", parentUuid: "d1", labels: {}, methodsDescription: {} },
        ],
        status: ExporterStatus.LEASE_READY,
        statusMessage: "ready for lease",
        registered: true,
        lastSeen: T0 + 7000,
      });
      const l = lease("l1", {
        selector: "board=rpi4,rev notin (1),!broken",
        exporterName: "pi-1",
        duration: 90 * 60_000 + 500,
        beginTime: T0 + 1234,
        endTime: T0 + 90 * 60_000 + 1734,
        allowDisabled: true,
        tags: { ci: "nightly" },
        context: { build: "42" },
        presenceTimeout: 30_000,
        exporter: "pi-1",
        effectiveBeginTime: T0 + 2345,
        dialedAt: T0 + 3456,
        priority: 20,
        spotAccess: true,
        conditions: [{ type: "Ready", status: "True", reason: "Ready", message: "An exporter has been acquired", lastTransitionTime: T0 + 2345 }],
      });
      let created!: Lease;
      await write(store, (w) => {
        w.createClient(client("alice"));
        w.createExporter({ ...e, leaseName: "l1" });
        created = w.createLease(l);
      });
      expect(created).toMatchObject(l);
      for (const s of [store, peer]) {
        await until(() => expect(s.getLease(NS, "l1")).toEqual({ ...l, seq: expect.any(Number) } as Lease));
        expect(s.getClient(NS, "alice")).toEqual(client("alice"));
        expect(s.getExporter(NS, "pi-1")).toEqual({ ...e, leaseName: "l1" });
      }
    });

    test("reads are copies: changing one changes nothing stored; exporters' nested values are shared and frozen", async () => {
      await write(store, (w) => {
        w.createClient(client("alice"));
        w.createExporter(exporter("pi-1"));
        w.createLease(lease("l1"));
      });
      const c = store.getClient(NS, "alice")!;
      c.labels.team = "b";
      const l = store.getLease(NS, "l1")!;
      l.tags.x = "y";
      l.conditions.push({ type: "Ready", status: "True", reason: "R", message: "", lastTransitionTime: 0 });
      const e = store.getExporter(NS, "pi-1")!;
      e.status = ExporterStatus.AVAILABLE;
      expect(() => {
        (e.labels as Record<string, string>).board = "x";
      }).toThrow();
      expect(store.getClient(NS, "alice")!.labels).toEqual({ team: "a" });
      expect(store.getLease(NS, "l1")).toMatchObject({ tags: {}, conditions: [] });
      expect(store.getExporter(NS, "pi-1")!.status).toBe(ExporterStatus.UNSPECIFIED);
    });

    test("a transaction's reads see its own writes; a throw rolls all of it back and runs no after-commit callback", async () => {
      let seen: unknown;
      let ran = 0;
      const failed = write(store, (w) => {
        w.createClient(client("alice"));
        w.createExporter(exporter("pi-1"));
        seen = store.getClient(NS, "alice")?.name;
        w.afterCommit(() => ran++);
        throw new Error("changed my mind");
      });
      await expect(failed).rejects.toThrow("changed my mind");
      expect(seen).toBe("alice");
      expect(ran).toBe(0);
      expect(store.getClient(NS, "alice")).toBeNull();
      expect(store.getExporter(NS, "pi-1")).toBeNull();
      expect(await write(store, (w) => {
        w.createClient(client("alice"));
        w.afterCommit(() => ran++);
        return "done";
      })).toBe("done");
      expect(ran).toBe(1);
      expect(store.getClient(NS, "alice")?.name).toBe("alice");
    });

    test("inside a transaction every read shows its writes, as the scheduling pass needs: scan, lists, lease by name", async () => {
      await write(store, (w) => {
        w.createExporter(exporter("pi-1"));
        w.createLease(lease("old", { createdAt: T0 }));
      });
      const seen = await write(store, (w) => {
        w.createExporter(exporter("pi-0"));
        w.updateExporter({ ...store.getExporter(NS, "pi-1")!, leaseName: "new" });
        w.createLease(lease("new", { createdAt: T0 + 50, exporter: "pi-1" }));
        w.updateLease({ ...store.getLease(NS, "old")!, ended: true });
        return {
          scan: store.scanExporters(NS).map((e) => `${e.name}:${e.leaseName}`),
          held: [...store.heldExporters(NS)],
          open: store.listLeases(NS, { onlyActive: true }).map((l) => l.name),
          all: store.listLeases(undefined).map((l) => l.name),
          pinned: store.getLease(NS, "new")?.exporter,
        };
      });
      expect(seen).toEqual({ scan: ["pi-0:null", "pi-1:new"], held: [["pi-1", "new"]], open: ["new"], all: ["old", "new"], pinned: "pi-1" });
    });

    test("the held exporters follow every write: taken, let go, deleted; and a rollback", async () => {
      await write(store, (w) => {
        for (const n of ["pi-1", "pi-2", "pi-3"]) w.createExporter(exporter(n));
      });
      const held = () => [...store.heldExporters(NS)].sort();
      expect(held()).toEqual([]);
      await write(store, (w) => {
        w.updateExporter({ ...store.getExporter(NS, "pi-1")!, leaseName: "a" });
        w.updateExporter({ ...store.getExporter(NS, "pi-3")!, leaseName: "c" });
      });
      expect(held()).toEqual([["pi-1", "a"], ["pi-3", "c"]]);
      await write(store, (w) => {
        w.updateExporter({ ...store.getExporter(NS, "pi-1")!, leaseName: null });
        w.deleteExporter(NS, "pi-3");
      });
      expect(held()).toEqual([]);
      await expect(write(store, (w) => {
        w.updateExporter({ ...store.getExporter(NS, "pi-2")!, leaseName: "b" });
        expect(held()).toEqual([["pi-2", "b"]]);
        throw new Error("undo");
      })).rejects.toThrow("undo");
      expect(held()).toEqual([]);
      expect(store.heldExporters("elsewhere").size).toBe(0);
    });

    test("a transaction started inside a running one joins it: one commit, one rollback", async () => {
      await expect(write(store, (w) => {
        w.createClient(client("alice"));
        void store.transaction((inner) => inner.createClient(client("bob")));
        expect(store.getClient(NS, "bob")?.name).toBe("bob");
        throw new Error("undo both");
      })).rejects.toThrow("undo both");
      expect(store.listClients(NS)).toEqual([]);
    });

    test("create refuses a taken name, update a missing one; deletes remove", async () => {
      await write(store, (w) => {
        w.createClient(client("alice"));
        w.createExporter(exporter("pi-1"));
      });
      await expect(write(store, (w) => w.createClient(client("alice")))).rejects.toThrow();
      await expect(write(store, (w) => w.createExporter(exporter("pi-1")))).rejects.toThrow();
      await expect(write(store, (w) => w.updateClient(client("nobody")))).rejects.toThrow();
      await expect(write(store, (w) => w.updateExporter(exporter("nothing")))).rejects.toThrow();
      await expect(write(store, (w) => w.updateLease({ ...lease("none"), seq: 1 }))).rejects.toThrow();
      await write(store, (w) => {
        w.deleteClient(NS, "alice");
        w.deleteExporter(NS, "pi-1");
      });
      expect(store.getClient(NS, "alice")).toBeNull();
      expect(store.getExporter(NS, "pi-1")).toBeNull();
      await until(() => expect(peer.getExporter(NS, "pi-1")).toBeNull());
    });

    test("updates replace the whole object; setLastSeen touches only lastSeen of the exporters that exist", async () => {
      await write(store, (w) => {
        w.createClient(client("alice"));
        w.createExporter(exporter("pi-1"));
        w.createExporter(exporter("pi-2"));
      });
      await write(store, (w) => {
        w.updateClient({ ...client("alice"), labels: { team: "b" }, tokenId: "rotated" });
        w.updateExporter({ ...exporter("pi-1"), labels: {}, status: ExporterStatus.AVAILABLE, statusMessage: "ok" });
        w.setLastSeen(NS, ["pi-2", "ghost"], T0 + 60_000);
      });
      await until(() => expect(peer.getClient(NS, "alice")).toMatchObject({ labels: { team: "b" }, tokenId: "rotated" }));
      await until(() => expect(peer.getExporter(NS, "pi-1")).toMatchObject({ labels: {}, status: ExporterStatus.AVAILABLE, statusMessage: "ok" }));
      await until(() => expect(peer.getExporter(NS, "pi-2")).toEqual(exporter("pi-2", { lastSeen: T0 + 60_000 })));
      expect(store.getExporter(NS, "ghost")).toBeNull();
    });

    test("exporters list sorted by name (scan too); leases in creation order, filtered by client and open", async () => {
      await write(store, (w) => {
        for (const n of ["pi-3", "pi-1", "pi-2"]) w.createExporter(exporter(n));
        w.createLease(lease("zz-first", { createdAt: T0 + 10 }));
        w.createLease(lease("aa-second", { createdAt: T0 + 20, client: "bob" }));
        w.createLease(lease("mm-third", { createdAt: T0 + 30, ended: true }));
      });
      for (const s of [store, peer]) {
        await until(() => {
          expect(s.listLeases(NS).map((l) => l.name)).toEqual(["zz-first", "aa-second", "mm-third"]);
          expect(s.listExporters(NS).map((e) => e.name)).toEqual(["pi-1", "pi-2", "pi-3"]);
          expect(s.listExporters(undefined).map((e) => e.name)).toEqual(["pi-1", "pi-2", "pi-3"]);
          expect(s.scanExporters(NS).map((e) => e.name)).toEqual(["pi-1", "pi-2", "pi-3"]);
          expect([...s.heldExporters(NS)] as [string, string | null][]).toEqual([...s.scanExporters(NS)].filter((e) => e.leaseName !== null).map((e) => [e.name, e.leaseName]));
          expect(s.listLeases(NS, { client: "bob" }).map((l) => l.name)).toEqual(["aa-second"]);
          expect(s.listLeases(undefined, { onlyActive: true }).map((l) => l.name)).toEqual(["zz-first", "aa-second"]);
        });
      }
      const seqs = store.listLeases(NS).map((l) => l.seq);
      expect(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!).toBe(true);

      // A scan after an exporter changed has the change in its place; after one came and one went, the new order.
      await write(store, (w) => w.updateExporter({ ...store.getExporter(NS, "pi-2")!, statusMessage: "changed" }));
      for (const s of [store, peer]) {
        await until(() => expect(s.scanExporters(NS).map((e) => `${e.name}:${e.statusMessage}`)).toEqual(["pi-1:", "pi-2:changed", "pi-3:"]));
      }
      await write(store, (w) => {
        w.createExporter(exporter("pi-0"));
        w.deleteExporter(NS, "pi-2");
      });
      await write(store, (w) => w.updateExporter({ ...store.getExporter(NS, "pi-3")!, statusMessage: "again" }));
      for (const s of [store, peer]) {
        await until(() => expect(s.scanExporters(NS).map((e) => `${e.name}:${e.statusMessage}`)).toEqual(["pi-0:", "pi-1:", "pi-3:again"]));
      }
    });

    test("the store refuses a second open lease on one exporter; an ended lease does not count", async () => {
      await write(store, (w) => {
        w.createExporter(exporter("pi-1", { leaseName: "l1" }));
        w.createLease(lease("l1", { exporter: "pi-1" }));
        w.createLease(lease("old", { exporter: "pi-1", ended: true, createdAt: T0 }));
      });
      await expect(write(store, (w) => w.createLease(lease("l2", { exporter: "pi-1" })))).rejects.toThrow();
      await write(store, (w) => w.createLease(lease("l2")));
      await expect(write(store, (w) => w.updateLease({ ...store.getLease(NS, "l2")!, exporter: "pi-1" }))).rejects.toThrow();
      expect(store.getLease(NS, "l2")!.exporter).toBeUndefined();
    });

    test("two writers assigning one exporter at once: exactly one lease gets it, the other sees it taken", async () => {
      await write(store, (w) => {
        w.createExporter(exporter("pi-1"));
        w.createLease(lease("mine", { createdAt: T0 + 1 }));
        w.createLease(lease("theirs", { createdAt: T0 + 2 }));
      });
      await until(() => expect(peer.getLease(NS, "theirs")).not.toBeNull());
      const assign = (s: Store, name: string) => write(s, (w) => {
        const e = s.getExporter(NS, "pi-1")!;
        if (e.leaseName !== null) return false;
        w.updateExporter({ ...e, leaseName: name });
        w.updateLease({ ...s.getLease(NS, name)!, exporter: "pi-1" });
        return true;
      });
      const won = await Promise.all([assign(store, "mine"), assign(peer, "theirs")]);
      expect(won.filter(Boolean)).toHaveLength(1);
      const winner = won[0] ? "mine" : "theirs";
      for (const s of [store, peer]) {
        await until(() => {
          expect(s.getExporter(NS, "pi-1")!.leaseName).toBe(winner);
          expect(s.listLeases(NS).filter((l) => l.exporter === "pi-1").map((l) => l.name)).toEqual([winner]);
        });
      }
    });

    test("access policies: put creates or replaces, delete removes, list is sorted by name, also from the peer", async () => {
      const policy = (name: string, priority: number): AccessPolicy => ({
        namespace: NS,
        name,
        exporterSelector: parseSelector("board=rpi4"),
        policies: [{ description: "CI", priority, maximumDurationMs: 2 * 3_600_000, spotAccess: true, from: [parseSelector("role in (ci,nightly),!banned")] }],
      });
      await write(store, (w) => {
        w.putPolicy(policy("zeta", 1));
        w.putPolicy(policy("alpha", 5));
      });
      await write(store, (w) => w.putPolicy(policy("zeta", 9)));
      for (const s of [store, peer]) {
        await until(() => expect(s.listPolicies(NS)).toEqual([policy("alpha", 5), policy("zeta", 9)]));
      }
      await write(store, (w) => w.deletePolicy(NS, "alpha"));
      for (const s of [store, peer]) await until(() => expect(s.listPolicies(NS).map((p) => p.name)).toEqual(["zeta"]));
      await expect(write(store, (w) => {
        w.putPolicy(policy("rolled-back", 1));
        throw new Error("no");
      })).rejects.toThrow("no");
      expect(store.listPolicies(NS).map((p) => p.name)).toEqual(["zeta"]);
    });

    test("audit entries: kept in the order they were made, read by every replica, filtered alike; a rolled-back one is not kept", async () => {
      const entry = (i: number, extra: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
        at: T0 + i, namespace: NS, action: "lease.create", actor: `client/c${i % 2}`, lease: `l${i}`, client: `c${i % 2}`, reason: "", detail: `entry ${i}`, ...extra,
      });
      for (let i = 0; i < 6; i++) await write(i % 2 ? peer : store, (w) => w.appendAudit(entry(i)));
      await write(store, (w) => {
        w.createClient(client("audited"));
        w.appendAudit(entry(6, { action: "client.create", actor: "admin/admin", client: "audited", lease: undefined }));
      });
      await expect(write(store, (w) => {
        w.appendAudit(entry(7, { lease: "rolled-back" }));
        throw new Error("no");
      })).rejects.toThrow("no");
      await write(store, (w) => w.appendAudit(entry(8, { namespace: "", action: "token.refuse", actor: "unknown", lease: undefined, client: undefined })));
      for (const s of [store, peer]) {
        await until(async () => {
          const all = await s.listAudit({ namespace: NS });
          expect(all.map((e) => e.detail)).toEqual(["entry 0", "entry 1", "entry 2", "entry 3", "entry 4", "entry 5", "entry 6", "entry 8"]);
          expect(new Set(all.map((e) => e.seq)).size).toBe(all.length);
          expect(all[6]).toMatchObject({ action: "client.create", actor: "admin/admin", client: "audited" });
          expect(all[6]!.lease).toBeUndefined();
        });
      }
      expect((await peer.listAudit({ namespace: NS, client: "c1" })).map((e) => e.lease)).toEqual(["l1", "l3", "l5"]);
      expect((await peer.listAudit({ namespace: NS, since: T0 + 4, limit: 2 })).map((e) => e.detail)).toEqual(["entry 6", "entry 8"]);
      expect((await store.listAudit({ namespace: NS, lease: "l2" })).map((e) => e.detail)).toEqual(["entry 2"]);
      expect((await store.listAudit({ namespace: "elsewhere" })).map((e) => e.action)).toEqual(["token.refuse"]);
    });

    test("flush: once it resolves, every committed audit entry is readable, without waiting", async () => {
      for (let i = 0; i < 5; i++) {
        await write(store, (w) => w.appendAudit({ at: T0 + i, namespace: NS, action: "lease.release", actor: "client/f", lease: `f${i}`, client: "f", reason: "", detail: "" }));
      }
      await store.flush();
      expect((await store.listAudit({ namespace: NS, client: "f" })).map((e) => e.lease)).toEqual(["f0", "f1", "f2", "f3", "f4"]);
    });
  });
}
