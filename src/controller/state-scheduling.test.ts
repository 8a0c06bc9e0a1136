/**
 * Scheduling properties on the fake clock, through ControllerState on a real SQLite
 * file: priority from access policies, no starvation of a lone lease behind a long
 * queue, and fair shares between clients asking at different rates.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { parseAccessPolicy } from "../common/access-policy.ts";
import { Harness, MIN, NS } from "./state-harness.ts";

let h: Harness;

beforeEach(() => {
  h = new Harness();
});

afterEach(() => h.close());

const create = (client: string, name: string, duration = 10 * MIN) =>
  h.state.createLease(NS, client, { selector: "board=rpi4", duration }, name);

test("a higher priority goes first, however long the others have waited", async () => {
  await h.state.createClient(NS, "ci", { role: "ci" });
  await h.state.createClient(NS, "boss", { role: "admin" });
  await h.state.applyPolicies(NS, [parseAccessPolicy({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterAccessPolicy", metadata: { name: "p" },
    spec: { policies: [
      { priority: 20, from: [{ clientSelector: { matchLabels: { role: "admin" } } }] },
      { priority: 5, from: [{ clientSelector: { matchLabels: { role: "ci" } } }] },
    ] },
  }, NS)]);
  await h.onlineExporter("pi-1", { board: "rpi4" });
  for (let i = 0; i < 5; i++) await create("ci", `ci-${i}`);
  await create("boss", "urgent");
  expect(h.lease("ci-0").exporter).toBe("pi-1");
  h.clock.advance(10 * MIN);
  h.expectSummaries({ "ci-0": "Ready=False/Expired@pi-1 ended", urgent: "Ready/Ready@pi-1", "ci-1": "Pending/NotAvailable" });
  expect(h.lease("urgent").priority).toBe(20);
  expect(h.state.queueStanding(NS, "ci-1")).toEqual({ position: 1, estimatedWaitMs: 10 * MIN });
  expect(h.state.queueStanding(NS, "ci-4")?.position).toBe(4);
});

test("no starvation: one lease queued behind a pipeline's 50 gets the next free exporter", async () => {
  await h.state.createClient(NS, "ci");
  await h.state.createClient(NS, "alice");
  await h.onlineExporter("pi-1", { board: "rpi4" });
  await h.onlineExporter("pi-2", { board: "rpi4" });
  for (let i = 0; i < 50; i++) await create("ci", `ci-${i}`, 10 * MIN + i);
  await create("alice", "mine");
  expect(h.state.queueStanding(NS, "mine")?.position).toBe(1);
  // The first CI lease to end frees an exporter: alice holds none, the pipeline two.
  h.clock.advance(10 * MIN);
  expect(h.summary("mine")).toMatch(/^Ready\/Ready@pi-/);
  expect(h.state.listLeases(NS, { client: "ci" }).filter((l) => l.exporter === undefined)).toHaveLength(48);
});

test("three clients asking at different rates each get their fair share of the exporters, within 10%", async () => {
  const clients = { hungry: 1, steady: 3, slow: 6 }; // minutes between their requests
  for (const c of Object.keys(clients)) await h.state.createClient(NS, c);
  for (const e of ["pi-1", "pi-2", "pi-3"]) await h.onlineExporter(e, { board: "rpi4" });
  const HOURS = 5;
  let n = 0;
  for (let minute = 0; minute < HOURS * 60; minute++) {
    for (const [c, every] of Object.entries(clients)) if (minute % every === 0) await create(c, `${c}-${n++}`);
    h.clock.advance(MIN);
  }
  const now = h.clock.time;
  const held: Record<string, number> = {};
  for (const l of h.state.listLeases(NS, { onlyActive: false })) {
    if (l.effectiveBeginTime === undefined) continue;
    held[l.client] = (held[l.client] ?? 0) + ((l.effectiveEndTime ?? now) - l.effectiveBeginTime);
  }
  const total = Object.values(held).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThan(0.95 * 3 * HOURS * 60 * MIN); // the exporters were busy
  const shares = Object.fromEntries(Object.entries(held).map(([c, ms]) => [c, ms / total]));
  // First come, first served would give them shares in the ratio of their asking, 6 : 2 : 1.
  console.log(`shares of exporter time over ${HOURS} h: ${Object.entries(shares).map(([c, s]) => `${c} ${(s * 100).toFixed(1)}%`).join(", ")}`);
  for (const c of Object.keys(clients)) expect(Math.abs(shares[c]! - 1 / 3)).toBeLessThan(0.1 / 3);
}, 60_000);

const POLICIES = [parseAccessPolicy({
  apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterAccessPolicy", metadata: { name: "rpi" },
  spec: {
    exporterSelector: { matchLabels: { board: "rpi4" } },
    policies: [
      { description: "people", priority: 10, from: [{ clientSelector: { matchLabels: { role: "dev" } } }] },
      { description: "ci", priority: 5, maximumDuration: "20m", spotAccess: true, from: [{ clientSelector: { matchLabels: { role: "ci" } } }] },
    ],
  },
}, NS)];

test("spot preemption: a non-spot lease ends the spot lease that began last, whose holder sees why", async () => {
  await h.state.createClient(NS, "ci", { role: "ci" });
  await h.state.createClient(NS, "alice", { role: "dev" });
  await h.state.applyPolicies(NS, POLICIES);
  await h.onlineExporter("pi-1", { board: "rpi4" });
  await h.onlineExporter("pi-2", { board: "rpi4" });
  await create("ci", "early");
  h.clock.advance(MIN);
  await create("ci", "late");
  await create("alice", "mine");
  h.expectSummaries({ early: "Ready/Ready@pi-1", late: "Ready=False/Preempted@pi-2 ended", mine: "Ready/Ready@pi-2" });
  expect(h.lease("late").conditions.find((c) => c.type === "Ready")?.message).toContain("non-spot access (client alice)");
  expect({ priority: h.lease("mine").priority, spot: h.lease("mine").spotAccess }).toEqual({ priority: 10, spot: undefined });
  // A spot lease never preempts another.
  await create("ci", "third");
  expect(h.summary("third")).toBe("Pending/NotAvailable");
});

test("maximumDuration: a longer lease is shortened when it starts, and cannot be extended past it", async () => {
  await h.state.createClient(NS, "ci", { role: "ci" });
  await h.state.applyPolicies(NS, POLICIES);
  await h.onlineExporter("pi-1", { board: "rpi4" });
  await create("ci", "long", 90 * MIN);
  expect(h.lease("long").duration).toBe(20 * MIN);
  expect(h.lease("long").conditions.find((c) => c.type === "Ready")?.message).toContain("capped at 20m by access policy rpi (ci)");
  await expect(h.state.updateLease(NS, "long", { duration: 30 * MIN }, "ci")).rejects.toThrow("access policy rpi (ci) allows leases of at most 20m");
  await h.state.updateLease(NS, "long", { duration: 15 * MIN }, "ci");
  h.clock.advance(15 * MIN);
  expect(h.summary("long")).toBe("Ready=False/Expired@pi-1 ended");
});

test("a lease that names an exporter whose record let go of it (a commit cut in half) keeps it; the pass repairs the record and places others elsewhere", async () => {
  await h.state.createClient(NS, "alice");
  await h.onlineExporter("pi-1", { board: "rpi4" });
  await h.onlineExporter("pi-2", { board: "rpi4" });
  await create("alice", "held");
  expect(h.lease("held").exporter).toBe("pi-1");
  // What a leader killed between the exporter's write and the lease's leaves behind.
  await h.store.transaction((w) => w.updateExporter({ ...h.store.getExporter(NS, "pi-1")!, leaseName: null }));
  await create("alice", "next");
  h.expectSummaries({ held: "Ready/Ready@pi-1", next: "Ready/Ready@pi-2" });
  expect(h.state.getExporter(NS, "pi-1").leaseName).toBe("held");
});
