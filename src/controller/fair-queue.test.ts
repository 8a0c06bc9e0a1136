import { describe, expect, test } from "bun:test";
import { type ClientShare, FairQueue, type QueuedLease, sharesOf } from "./fair-queue.ts";
import type { Lease } from "./model.ts";

let seq = 0;
function lease(client: string, extra: Partial<Lease> = {}): Lease {
  seq++;
  return {
    namespace: "default", name: `l${seq}`, client, selector: "board=rpi4", allowDisabled: false, tags: {}, context: {},
    released: false, ended: false, conditions: [], createdAt: seq, seq, ...extra,
  };
}

/** Drains the queue, placing every lease (as if exporters were plenty), and returns the names in order. */
function order(pending: QueuedLease[], shares = new Map<string, ClientShare>()): string[] {
  const q = new FairQueue(pending, shares);
  const out: string[] = [];
  for (let item = q.next(), t = 1; item; item = q.next(), t++) {
    out.push(item.lease.name);
    q.placed(item.lease.client, t);
  }
  return out;
}

describe("FairQueue", () => {
  test("one client: first come, first served", () => {
    const ls = [lease("ci"), lease("ci"), lease("ci")];
    expect(order(ls.map((l) => ({ lease: l, priority: 0 })))).toEqual(ls.map((l) => l.name));
  });

  test("a person's one lease is not stuck behind a pipeline's many: they take turns", () => {
    const ci = Array.from({ length: 4 }, () => lease("ci"));
    const alice = lease("alice");
    const names = order([...ci, alice].map((l) => ({ lease: l, priority: 0 })));
    // ci's first is older, so it goes first; then alice holds fewer than ci.
    expect(names.slice(0, 2)).toEqual([ci[0]!.name, alice.name]);
    expect(names.slice(2)).toEqual(ci.slice(1).map((l) => l.name));
  });

  test("priority first, whatever the shares and the age", () => {
    const old = lease("ci");
    const urgent = lease("admin");
    const names = order([{ lease: old, priority: 0 }, { lease: urgent, priority: 20 }], new Map([["admin", { held: 5, lastBeganAt: 99 }]]));
    expect(names).toEqual([urgent.name, old.name]);
  });

  test("within a priority: fewer held first, then served longest ago, then the older request", () => {
    const a = lease("a");
    const b = lease("b");
    const c = lease("c");
    const shares = new Map<string, ClientShare>([["a", { held: 2, lastBeganAt: 1 }], ["b", { held: 1, lastBeganAt: 50 }], ["c", { held: 1, lastBeganAt: 10 }]]);
    expect(order([a, b, c].map((l) => ({ lease: l, priority: 0 })), shares)).toEqual([c.name, b.name, a.name]);
  });

  test("a lease that is not placed does not change its client's turn", () => {
    const a1 = lease("a");
    const a2 = lease("a");
    const b1 = lease("b");
    const q = new FairQueue([a1, a2, b1].map((l) => ({ lease: l, priority: 0 })), new Map());
    expect(q.next()!.lease.name).toBe(a1.name); // not placed: no exporter for it
    expect(q.next()!.lease.name).toBe(a2.name); // a still holds nothing, and a2 is older than b1
    q.placed("a", 5);
    expect(q.next()!.lease.name).toBe(b1.name);
    expect(q.next()).toBeUndefined();
  });

  test("10 000 queued leases of 100 clients: each comes out once, priorities in order", () => {
    const pending: QueuedLease[] = [];
    for (let i = 0; i < 10_000; i++) pending.push({ lease: lease(`c${i % 100}`), priority: i % 3 });
    const q = new FairQueue(pending, new Map());
    const seen = new Set<string>();
    let lastPriority = Infinity;
    for (let item = q.next(), t = 0; item; item = q.next(), t++) {
      expect(item.priority).toBeLessThanOrEqual(lastPriority);
      lastPriority = item.priority;
      seen.add(item.lease.name);
      q.placed(item.lease.client, t);
    }
    expect(seen.size).toBe(10_000);
  });
});

test("sharesOf counts only leases that hold an exporter", () => {
  const held = lease("a", { exporter: "pi-1", effectiveBeginTime: 40 });
  const held2 = lease("a", { exporter: "pi-2", effectiveBeginTime: 70 });
  const waiting = lease("b");
  const ended = lease("c", { exporter: "pi-3", ended: true, effectiveBeginTime: 10 });
  expect(Object.fromEntries(sharesOf([held, held2, waiting, ended]))).toEqual({ a: { held: 2, lastBeganAt: 70 } });
});
