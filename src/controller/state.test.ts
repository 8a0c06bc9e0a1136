import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import type { Lease } from "./model.ts";
import { Harness, MIN, NS } from "./state-harness.ts";
import { ControllerState, leaseExpiresAt } from "./state.ts";
import { SqliteStore } from "./store/sqlite.ts";

let h: Harness;

beforeEach(async () => {
  h = new Harness();
  await h.state.createClient(NS, "alice");
  await h.state.createClient(NS, "bob");
});

afterEach(() => h.close());

const create = (name: string, spec: Parameters<Harness["state"]["createLease"]>[2], client = "alice") =>
  h.state.createLease(NS, client, { duration: 30 * MIN, ...spec }, name);

describe("the queue", () => {
  test("two exporters, four leases: two Ready, two Pending, handed over in FIFO order, never doubled", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await h.onlineExporter("exp-b", { board: "rpi4" });
    for (const name of ["l1", "l2", "l3", "l4"]) await create(name, { selector: "board=rpi4" }, name === "l2" ? "bob" : "alice");
    h.expectSummaries({
      l1: "Ready/Ready@exp-a",
      l2: "Ready/Ready@exp-b",
      l3: "Pending/NotAvailable",
      l4: "Pending/NotAvailable",
    });

    await h.state.releaseLease(NS, "l2", "bob");
    h.expectSummaries({ l2: "Ready=False/Released@exp-b ended", l3: "Ready/Ready@exp-b", l4: "Pending/NotAvailable" });

    await create("l5", { selector: "board=rpi4" });
    await h.state.releaseLease(NS, "l1");
    h.expectSummaries({ l1: "Ready=False/Released@exp-a ended", l4: "Ready/Ready@exp-a", l5: "Pending/NotAvailable" });

    await h.state.releaseLease(NS, "l4");
    h.expectSummaries({ l5: "Ready/Ready@exp-a" });
    expect(h.state.getExporter(NS, "exp-a").leaseName).toBe("l5");
    expect(h.checks).toBeGreaterThan(10);
  });

  test("a new lease does not overtake an older pending one that can use the freed exporter", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("holder", { selector: "board=rpi4" });
    await create("pinned", { exporterName: "exp-a" });
    await create("newer", { selector: "board=rpi4" });
    h.expectSummaries({ pinned: "Pending/NotAvailable", newer: "Pending/NotAvailable" });
    await h.state.reportStatus(NS, "exp-a", ExporterStatus.LEASE_READY, "");
    await h.state.releaseLease(NS, "holder");
    await h.state.reportStatus(NS, "exp-a", ExporterStatus.AFTER_LEASE_HOOK, "");
    h.expectSummaries({ pinned: "Pending/NotReady", newer: "Pending/NotReady" });
    await h.state.reportStatus(NS, "exp-a", ExporterStatus.AVAILABLE, "");
    h.expectSummaries({ pinned: "Ready/Ready@exp-a", newer: "Pending/NotAvailable" });
  });

  test("among several free exporters the first by name is taken; a free exporter not wanted by older leases goes to a new one", async () => {
    await h.onlineExporter("zeta", { board: "rpi4" });
    await h.onlineExporter("alpha", { board: "rpi4", rev: "2" });
    await h.onlineExporter("beta", { board: "qemu" });
    await create("l1", { selector: "board=rpi4" });
    await create("l2", { selector: "board=rpi4,rev=2" });
    await create("l3", { selector: "board=qemu" });
    h.expectSummaries({ l1: "Ready/Ready@alpha", l2: "Pending/NotAvailable", l3: "Ready/Ready@beta" });
  });

  test("exporters become eligible on register, stream open and AVAILABLE, and the waiting lease gets them", async () => {
    await h.state.createExporter(NS, "exp-a", { board: "rpi4" });
    await create("l1", { selector: "board=rpi4" });
    h.expectSummaries({ l1: "Pending/Offline" });
    await h.state.register(NS, "exp-a", {}, []);
    h.expectSummaries({ l1: "Pending/Offline" });
    await h.state.statusStreamOpened(NS, "exp-a");
    h.expectSummaries({ l1: "Ready/Ready@exp-a" });
  });
});

describe("pins, selectors and unsatisfiable leases", () => {
  beforeEach(async () => {
    await h.onlineExporter("exp-a", { board: "rpi4", rev: "2" });
    await h.onlineExporter("exp-b", { board: "rpi4", rev: "3" });
    await h.onlineExporter("exp-c", { board: "qemu" });
  });

  test("a pinned lease gets its exporter even when others are free, and waits for it when held", async () => {
    await create("p1", { exporterName: "exp-b" });
    await create("p2", { exporterName: "exp-b", selector: "board=rpi4" });
    h.expectSummaries({ p1: "Ready/Ready@exp-b", p2: "Pending/NotAvailable" });
    await h.state.releaseLease(NS, "p1");
    h.expectSummaries({ p2: "Ready/Ready@exp-b" });
  });

  test.each([
    ["board=rpi4,rev=3", "exp-b"],
    ["board==qemu", "exp-c"],
    ["board!=rpi4", "exp-c"],
    ["rev in (3,4)", "exp-b"],
    ["board,rev notin (2)", "exp-b"],
    ["rev", "exp-a"],
    ["!rev", "exp-c"],
    ["jumpstarter.dev/name=exp-c", "exp-c"],
  ])("selector %p takes %s", async (selector, exporter) => {
    expect((await create("l", { selector })).exporter).toBe(exporter);
  });

  test.each([
    ["no exporter matches", { selector: "board=nope" }, "Unsatisfiable/NoAccess ended", "No exporter matches the selector board=nope"],
    ["the pin does not exist", { exporterName: "ghost" }, "Unsatisfiable/ExporterNotFound ended", "Requested exporter ghost was not found"],
    [
      "the pin does not match the selector",
      { exporterName: "exp-c", selector: "board=rpi4" },
      "Unsatisfiable/SelectorMismatch ended",
      "does not match selector board=rpi4",
    ],
  ])("unsatisfiable when %s", async (_label, spec, summary, message) => {
    const lease = await create("l", spec);
    expect(h.summary("l")).toBe(summary);
    expect(lease.conditions.find((c) => c.type === "Unsatisfiable")?.message).toContain(message);
    expect(lease.effectiveEndTime).toBe(h.clock.time);
  });

  test("disabled exporters: skipped by selectors, refused when pinned unless allowDisabled", async () => {
    await h.state.disableExporter(NS, "exp-a", "reflashing");
    expect((await create("l1", { selector: "board=rpi4" })).exporter).toBe("exp-b");
    await create("l2", { exporterName: "exp-a" });
    expect(h.summary("l2")).toBe("Unsatisfiable/ExporterDisabled ended");
    expect((await create("l3", { exporterName: "exp-a", allowDisabled: true })).exporter).toBe("exp-a");
    await h.state.disableExporter(NS, "exp-c", "broken fan");
    await create("l4", { selector: "board=qemu" });
    expect(h.summary("l4")).toBe("Unsatisfiable/AllDisabled ended");
  });

  test("deleting an exporter ends its lease and makes leases pinned to it unsatisfiable", async () => {
    await create("l1", { exporterName: "exp-a" });
    await create("l2", { exporterName: "exp-a" });
    await h.state.deleteExporter(NS, "exp-a");
    h.expectSummaries({ l1: "Ready=False/ExporterDeleted@exp-a ended", l2: "Unsatisfiable/ExporterNotFound ended" });
  });
});

describe("time", () => {
  beforeEach(async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
  });

  test("an immediate lease expires at effective begin + duration, counted from when it got the exporter", async () => {
    await create("first", { selector: "board=rpi4", duration: 10 * MIN });
    await create("second", { selector: "board=rpi4", duration: 20 * MIN });
    const t0 = h.clock.time;
    h.clock.advance(10 * MIN - 1);
    h.expectSummaries({ first: "Ready/Ready@exp-a", second: "Pending/NotAvailable" });
    h.clock.advance(1);
    h.expectSummaries({ first: "Ready=False/Expired@exp-a ended", second: "Ready/Ready@exp-a" });
    expect(h.lease("first").effectiveEndTime).toBe(t0 + 10 * MIN);
    expect(h.lease("second").effectiveBeginTime).toBe(t0 + 10 * MIN);
    expect(leaseExpiresAt(h.lease("second"))).toBe(t0 + 30 * MIN);
    h.clock.advance(20 * MIN);
    expect(h.summary("second")).toBe("Ready=False/Expired@exp-a ended");
    expect(h.state.getExporter(NS, "exp-a").leaseName).toBeNull();
  });

  test("a scheduled lease waits until its begin time and ends at begin + duration", async () => {
    const begin = h.clock.time + 5 * MIN;
    await create("later", { selector: "board=rpi4", beginTime: begin, duration: 10 * MIN });
    expect(h.summary("later")).toBe("Pending/Scheduled");
    await create("now", { selector: "board=rpi4", duration: 2 * MIN });
    expect(h.summary("now")).toBe("Ready/Ready@exp-a");
    h.clock.advance(5 * MIN);
    h.expectSummaries({ now: "Ready=False/Expired@exp-a ended", later: "Ready/Ready@exp-a" });
    expect(h.lease("later").effectiveBeginTime).toBe(begin);
    h.clock.advance(10 * MIN - 1);
    expect(h.summary("later")).toBe("Ready/Ready@exp-a");
    h.clock.advance(1);
    expect(h.lease("later").effectiveEndTime).toBe(begin + 10 * MIN);
  });

  test("a requested end time wins, and a window that closes while pending ends the lease unserved", async () => {
    const t0 = h.clock.time;
    await create("blocker", { selector: "board=rpi4", endTime: t0 + 7 * MIN, duration: 7 * MIN });
    await create("window", { selector: "board=rpi4", beginTime: t0, endTime: t0 + 5 * MIN, duration: undefined });
    expect(h.lease("window").duration).toBe(5 * MIN);
    h.clock.advance(5 * MIN);
    expect(h.summary("window")).toBe("Ready=False/Expired ended");
    expect(h.lease("window").exporter).toBeUndefined();
    h.clock.advance(2 * MIN);
    expect(h.summary("blocker")).toBe("Ready=False/Expired@exp-a ended");
  });

  test("extending and shortening an active lease moves its expiry timer", async () => {
    const t0 = h.clock.time;
    await create("l", { selector: "board=rpi4", duration: 10 * MIN });
    await h.state.updateLease(NS, "l", { duration: 60 * MIN }, "alice");
    h.clock.advance(30 * MIN);
    expect(h.summary("l")).toBe("Ready/Ready@exp-a");
    await h.state.updateLease(NS, "l", { endTime: t0 + 45 * MIN });
    expect(h.lease("l").duration).toBe(45 * MIN);
    h.clock.advance(15 * MIN);
    expect(h.summary("l")).toBe("Ready=False/Expired@exp-a ended");
  });

  test("the begin time can change only before the lease starts", async () => {
    const begin = h.clock.time + 60 * MIN;
    await create("l", { selector: "board=rpi4", beginTime: begin, endTime: begin + 10 * MIN, duration: undefined });
    await h.state.updateLease(NS, "l", { beginTime: begin - 30 * MIN });
    expect(h.lease("l")).toMatchObject({ beginTime: begin - 30 * MIN, endTime: undefined, duration: 10 * MIN });
    h.clock.advance(30 * MIN);
    expect(h.summary("l")).toBe("Ready/Ready@exp-a");
    await expect(h.state.updateLease(NS, "l", { beginTime: begin })).rejects.toThrow("it has already started");
    await expect(h.state.updateLease(NS, "l", { endTime: h.clock.time - MIN })).rejects.toThrow("must be after begin time");
  });

  test("a lease running for weeks re-arms its timer past the 24.8-day limit of Node timers", async () => {
    h.close();
    h = new Harness({ sweepIntervalMs: 7 * 24 * 60 * MIN });
    await h.state.createClient(NS, "alice");
    await h.onlineExporter("exp-a", { board: "rpi4" });
    const t0 = h.clock.time;
    await create("long", { selector: "board=rpi4", duration: 40 * 24 * 60 * MIN });
    h.clock.advance(30 * 24 * 60 * MIN);
    expect(h.summary("long")).toBe("Ready/Ready@exp-a");
    h.clock.advance(10 * 24 * 60 * MIN);
    expect(h.lease("long").effectiveEndTime).toBe(t0 + 40 * 24 * 60 * MIN);
  });
});

describe("restart", () => {
  test("a new ControllerState on the same file keeps leases, queue order and timers", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await h.onlineExporter("exp-b", { board: "rpi4" });
    const t0 = h.clock.time;
    await create("r1", { selector: "board=rpi4", duration: 10 * MIN });
    await create("r2", { selector: "board=rpi4", duration: 60 * MIN });
    await create("p1", { selector: "board=rpi4" });
    await create("p2", { selector: "board=rpi4" });
    await create("s1", { exporterName: "exp-b", beginTime: t0 + 120 * MIN, duration: 5 * MIN });
    const before = ["r1", "r2", "p1", "p2", "s1"].map((n) => h.lease(n));

    h.crash();
    h.clock.advance(MIN);
    h.open();
    expect(["r1", "r2", "p1", "p2", "s1"].map((n) => h.lease(n))).toEqual(before);
    // The exporters' streams were cut by the crash; they reconnect within the grace period.
    await h.state.statusStreamOpened(NS, "exp-a");
    await h.state.statusStreamOpened(NS, "exp-b");

    h.clock.advance(9 * MIN);
    h.expectSummaries({ r1: "Ready=False/Expired@exp-a ended", p1: "Ready/Ready@exp-a", p2: "Pending/NotAvailable" });
    await h.state.releaseLease(NS, "r2");
    h.expectSummaries({ p2: "Ready/Ready@exp-b" });
    await h.state.releaseLease(NS, "p2");
    h.clock.advance(110 * MIN);
    h.expectSummaries({ s1: "Ready/Ready@exp-b" });
  });

  test("stop() disarms every timer; start() arms one per open lease again, plus the sweep", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("running", { selector: "board=rpi4", duration: 10 * MIN });
    await create("scheduled", { selector: "board=rpi4", beginTime: h.clock.time + MIN });
    await create("queued", { selector: "board=rpi4" });
    expect(h.clock.armed).toBe(3);
    h.state.stop();
    expect(h.clock.armed).toBe(0);
    h.clock.advance(20 * MIN);
    expect(h.summary("running")).toBe("Ready/Ready@exp-a");
    await h.state.start();
    h.expectSummaries({ running: "Ready=False/Expired@exp-a ended", scheduled: "Ready/Ready@exp-a", queued: "Pending/NotAvailable" });
  });

  test("leases that expired while the controller was down end at start", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("l", { selector: "board=rpi4", duration: 10 * MIN });
    h.crash();
    h.clock.advance(15 * MIN);
    h.open();
    expect(h.summary("l")).toBe("Ready=False/Expired@exp-a ended");
    expect(h.lease("l").effectiveEndTime).toBe(h.clock.time);
  });
});

describe("offline exporters", () => {
  test("an exporter whose stream closed is offline 5 s later, announced then, keeps its lease but gets no new one until it is back", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("l1", { selector: "board=rpi4" });
    const seen: string[] = [];
    h.state.on("exporter", (e) => seen.push(`${e.online ? "online" : "offline"} ${ExporterStatus[e.status]}`));
    const closedAt = h.clock.time;
    await h.state.statusStreamClosed(NS, "exp-a");
    h.clock.advance(4_999);
    expect(h.state.getExporter(NS, "exp-a").online).toBe(true);
    h.clock.advance(1);
    const exporter = h.state.getExporter(NS, "exp-a");
    expect(exporter).toMatchObject({ online: false, status: ExporterStatus.OFFLINE, leaseName: "l1", lastSeen: closedAt });
    expect(exporter.statusMessage).toBe(`Connection lost at ${new Date(closedAt).toISOString()}`);
    // Announced when the grace ran out (a timer), not at the next sweep.
    expect(seen).toEqual(["online AVAILABLE", "offline OFFLINE"]);
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");

    await h.state.releaseLease(NS, "l1");
    await create("l2", { selector: "board=rpi4" });
    expect(h.summary("l2")).toBe("Pending/Offline");
    await h.state.statusStreamOpened(NS, "exp-a");
    expect(h.state.getExporter(NS, "exp-a").status).toBe(ExporterStatus.UNSPECIFIED);
    expect(h.summary("l2")).toBe("Ready/Ready@exp-a");
  });

  test("the grace's timer decides, fired late or early: nobody reads the exporter offline but not marked OFFLINE", async () => {
    await h.onlineExporter("late", { board: "rpi4" });
    await h.onlineExporter("early", { board: "rpi4" });
    // A busy event loop: the timer fires 40 ms after the grace is over by the clock.
    h.clock.skew = 40;
    await h.state.statusStreamClosed(NS, "late");
    h.clock.skew = -2;
    await h.state.statusStreamClosed(NS, "early");
    h.clock.skew = 0;
    h.clock.advance(4_997);
    expect(h.state.getExporter(NS, "late")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
    expect(h.state.getExporter(NS, "early")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
    // Fired 2 ms before the clock's grace is over: marked then, not left to the sweep.
    h.clock.advance(1);
    expect(h.state.getExporter(NS, "early")).toMatchObject({ online: false, status: ExporterStatus.OFFLINE });
    h.clock.advance(20);
    expect(h.state.getExporter(NS, "late")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
    h.clock.advance(22);
    expect(h.state.getExporter(NS, "late")).toMatchObject({ online: false, status: ExporterStatus.OFFLINE });
  });

  test("an exporter that reconnected to another replica stays online on the leader, whose stream closed", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    const store = SqliteStore.open(h.dir);
    const other = new ControllerState(store, { now: h.clock.now, setTimer: h.clock.setTimer, clearTimer: h.clock.clearTimer, isLeading: () => false });
    await other.start();
    try {
      await h.state.statusStreamClosed(NS, "exp-a");
      h.clock.advance(1_000);
      await other.statusStreamOpened(NS, "exp-a");
      // The leader's grace ends, then its sweeps run, while the other replica refreshes lastSeen.
      for (let i = 0; i < 6; i++) {
        h.clock.advance(10_000);
        await Promise.resolve();
        expect(h.state.getExporter(NS, "exp-a")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
      }
      // The other replica's stream closes too: offline by lastSeen, past the offline grace.
      await other.statusStreamClosed(NS, "exp-a");
      other.stop();
      h.clock.advance(70_000);
      await Promise.resolve();
      expect(h.state.getExporter(NS, "exp-a")).toMatchObject({ online: false, status: ExporterStatus.OFFLINE });
    } finally {
      other.stop();
      store.close();
    }
  });

  test("a stream that reconnects within the grace keeps the exporter online throughout", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await h.state.statusStreamClosed(NS, "exp-a");
    h.clock.advance(3_000);
    expect((await create("l", { selector: "board=rpi4" })).exporter).toBe("exp-a");
    await h.state.statusStreamOpened(NS, "exp-a");
    h.clock.advance(60_000);
    expect(h.state.getExporter(NS, "exp-a")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
  });

  test("after a restart, exporters get upstream's 60 s from their last sign of life to reconnect", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await h.onlineExporter("exp-b", { board: "rpi4" });
    h.crash();
    h.clock.advance(10_000);
    h.open();
    await h.state.statusStreamOpened(NS, "exp-a");
    h.clock.advance(45_000);
    expect(h.state.listExporters(NS).map((e) => `${e.name} ${e.online}`)).toEqual(["exp-a true", "exp-b true"]);
    h.clock.advance(5_001);
    expect(h.state.listExporters(NS).map((e) => `${e.name} ${e.online}`)).toEqual(["exp-a true", "exp-b false"]);
    // The next sweep writes it down.
    h.clock.advance(5_000);
    expect(h.state.getExporter(NS, "exp-b").status).toBe(ExporterStatus.OFFLINE);
  });

  test("unregister marks the exporter OFFLINE and unregistered but leaves its lease", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("l1", { selector: "board=rpi4" });
    const e = await h.state.unregister(NS, "exp-a", "Exporter shutting down");
    expect(e).toMatchObject({ registered: false, online: false, status: ExporterStatus.OFFLINE, statusMessage: "Exporter shutting down" });
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");
    await h.state.releaseLease(NS, "l1");
    await create("l2", { selector: "board=rpi4" });
    expect(h.summary("l2")).toBe("Pending/Offline");
  });
});

describe("release, ownership and transfer", () => {
  beforeEach(async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
  });

  test("releasing twice is FailedPrecondition; releasing a pending lease ends it", async () => {
    await create("l1", { selector: "board=rpi4" });
    await create("l2", { selector: "board=rpi4" });
    await h.state.releaseLease(NS, "l2");
    expect(h.summary("l2")).toBe("Ready=False/Released ended");
    await expect(h.state.releaseLease(NS, "l2")).rejects.toThrow(expect.objectContaining({ code: Code.FailedPrecondition, message: "lease 'l2' has already been released" }));
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");
  });

  /** What a Kubernetes release cut between its writes leaves: the exporter freed, the lease released but open. */
  const cutRelease = async (name: string) => {
    const lease = h.store.getLease(NS, name)!;
    await h.store.transaction((w) => {
      w.updateExporter({ ...h.store.getExporter(NS, lease.exporter!)!, leaseName: null });
      w.updateLease({ ...lease, released: true });
    });
  };

  test("a release cut short (released, still open) is finished by releasing again, once, with one audit entry", async () => {
    await create("l1", { selector: "board=rpi4" });
    await create("l2", { selector: "board=rpi4" });
    await cutRelease("l1");
    const done = await h.state.releaseLease(NS, "l1");
    expect(done).toMatchObject({ released: true, ended: true });
    h.expectSummaries({ l1: "Ready=False/Released@exp-a ended", l2: "Ready/Ready@exp-a" });
    expect((await h.state.listAudit({ namespace: NS, lease: "l1" })).filter((e) => e.action === "lease.release")).toHaveLength(1);
    await expect(h.state.releaseLease(NS, "l1")).rejects.toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
  });

  test("a lease released but still open is ended by the next pass, and does not take its exporter back", async () => {
    await create("l1", { selector: "board=rpi4" });
    await cutRelease("l1");
    // Before the fix the pass gave exp-a back to l1 (repairHolds), which stayed open for good.
    await create("l2", { selector: "board=rpi4" });
    h.expectSummaries({ l1: "Ready=False/Released@exp-a ended", l2: "Ready/Ready@exp-a" });
  });

  test("an exporter can release the lease it holds", async () => {
    await create("l1", { selector: "board=rpi4" });
    expect((await h.state.releaseExporterLease(NS, "exp-a"))?.name).toBe("l1");
    expect(h.summary("l1")).toBe("Ready=False/Released@exp-a ended");
    expect(await h.state.releaseExporterLease(NS, "exp-a")).toBeNull();
  });

  test("another client's lease is NotFound for get, update and release", async () => {
    await create("l1", { selector: "board=rpi4" });
    const nf = expect.objectContaining({ code: Code.NotFound, message: "lease 'l1' not found in namespace 'default'" });
    expect(() => h.state.getLease(NS, "l1", "bob")).toThrow(nf);
    await expect(h.state.updateLease(NS, "l1", { duration: MIN }, "bob")).rejects.toThrow(nf);
    await expect(h.state.releaseLease(NS, "l1", "bob")).rejects.toThrow(nf);
    expect(h.state.getLease(NS, "l1", "alice").client).toBe("alice");
  });

  test("an active lease can be transferred to another existing client", async () => {
    await create("l1", { selector: "board=rpi4" });
    await create("l2", { selector: "board=rpi4" });
    await expect(h.state.updateLease(NS, "l2", { client: "bob" }, "alice")).rejects.toThrow("it has not started yet");
    await expect(h.state.updateLease(NS, "l1", { client: "carol" }, "alice")).rejects.toThrow("client 'carol' not found");
    expect((await h.state.updateLease(NS, "l1", { client: "bob" }, "alice")).client).toBe("bob");
    await expect(h.state.releaseLease(NS, "l1", "alice")).rejects.toThrow("not found");
    await h.state.releaseLease(NS, "l1", "bob");
    await expect(h.state.updateLease(NS, "l1", { duration: MIN }, "bob")).rejects.toThrow("lease 'l1' has already ended");
  });
});

describe("listing and events", () => {
  test("listLeases filters by activity, client, lease labels and tags", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    await create("l1", { selector: "board=rpi4,rev!=1", tags: { ci: "yes" } });
    await create("l2", { selector: "board=rpi4", tags: { ci: "no" } }, "bob");
    await create("l3", { selector: "board=gone" });
    const names = (leases: Lease[]) => leases.map((l) => l.name);
    expect(names(h.state.listLeases(NS))).toEqual(["l1", "l2"]);
    expect(names(h.state.listLeases(NS, { onlyActive: false }))).toEqual(["l1", "l2", "l3"]);
    expect(names(h.state.listLeases(NS, { client: "bob" }))).toEqual(["l2"]);
    expect(names(h.state.listLeases(NS, { selector: "metadata.jumpstarter.dev/ci=yes" }))).toEqual(["l1"]);
    expect(names(h.state.listLeases(NS, { selector: "board=rpi4", tags: "ci in (no)" }))).toEqual(["l2"]);
    expect(() => h.state.listLeases(NS, { tags: "ci=" + "x".repeat(64) })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  });

  test("events fire after commit with the committed state; a failed change fires none", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    const seen: string[] = [];
    h.state.on("lease", (l) => seen.push(`lease ${l.name} ${h.summary(l.name)}`));
    const off = h.state.on("exporter", (e) => seen.push(`exporter ${e.name} ${e.leaseName}`));
    await create("l1", { selector: "board=rpi4" });
    expect(seen).toEqual(["lease l1 Ready/Ready@exp-a", "exporter exp-a l1"]);
    seen.length = 0;
    await expect(create("l1", { selector: "board=rpi4" })).rejects.toThrow("already exists");
    expect(seen).toEqual([]);
    off();
    await h.state.releaseLease(NS, "l1");
    expect(seen).toEqual(["lease l1 Ready=False/Released@exp-a ended"]);
  });

  test("lease names default to UUIDv7, in creation order", async () => {
    await h.onlineExporter("exp-a", { board: "rpi4" });
    const a = await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN });
    h.clock.advance(1);
    const b = await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN });
    expect(a.name).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.name < b.name).toBe(true);
    expect(parseInt(a.name.replace("-", "").slice(0, 12), 16)).toBe(a.createdAt);
  });
});
