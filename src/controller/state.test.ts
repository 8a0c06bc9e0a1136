import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import type { Lease } from "./model.ts";
import { Harness, MIN, NS } from "./state-harness.ts";
import { leaseExpiresAt } from "./state.ts";

let h: Harness;

beforeEach(() => {
  h = new Harness();
  h.state.createClient(NS, "alice");
  h.state.createClient(NS, "bob");
});

afterEach(() => h.close());

const create = (name: string, spec: Parameters<Harness["state"]["createLease"]>[2], client = "alice") =>
  h.state.createLease(NS, client, { duration: 30 * MIN, ...spec }, name);

describe("the queue", () => {
  test("two exporters, four leases: two Ready, two Pending, handed over in FIFO order, never doubled", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    h.onlineExporter("exp-b", { board: "rpi4" });
    for (const name of ["l1", "l2", "l3", "l4"]) create(name, { selector: "board=rpi4" }, name === "l2" ? "bob" : "alice");
    h.expectSummaries({
      l1: "Ready/Ready@exp-a",
      l2: "Ready/Ready@exp-b",
      l3: "Pending/NotAvailable",
      l4: "Pending/NotAvailable",
    });

    h.state.releaseLease(NS, "l2", "bob");
    h.expectSummaries({ l2: "Ready=False/Released@exp-b ended", l3: "Ready/Ready@exp-b", l4: "Pending/NotAvailable" });

    create("l5", { selector: "board=rpi4" });
    h.state.releaseLease(NS, "l1");
    h.expectSummaries({ l1: "Ready=False/Released@exp-a ended", l4: "Ready/Ready@exp-a", l5: "Pending/NotAvailable" });

    h.state.releaseLease(NS, "l4");
    h.expectSummaries({ l5: "Ready/Ready@exp-a" });
    expect(h.state.getExporter(NS, "exp-a").leaseName).toBe("l5");
    expect(h.checks).toBeGreaterThan(10);
  });

  test("a new lease does not overtake an older pending one that can use the freed exporter", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("holder", { selector: "board=rpi4" });
    create("pinned", { exporterName: "exp-a" });
    create("newer", { selector: "board=rpi4" });
    h.expectSummaries({ pinned: "Pending/NotAvailable", newer: "Pending/NotAvailable" });
    h.state.reportStatus(NS, "exp-a", ExporterStatus.LEASE_READY, "");
    h.state.releaseLease(NS, "holder");
    h.state.reportStatus(NS, "exp-a", ExporterStatus.AFTER_LEASE_HOOK, "");
    h.expectSummaries({ pinned: "Pending/NotReady", newer: "Pending/NotReady" });
    h.state.reportStatus(NS, "exp-a", ExporterStatus.AVAILABLE, "");
    h.expectSummaries({ pinned: "Ready/Ready@exp-a", newer: "Pending/NotAvailable" });
  });

  test("among several free exporters the first by name is taken; a free exporter not wanted by older leases goes to a new one", () => {
    h.onlineExporter("zeta", { board: "rpi4" });
    h.onlineExporter("alpha", { board: "rpi4", rev: "2" });
    h.onlineExporter("beta", { board: "qemu" });
    create("l1", { selector: "board=rpi4" });
    create("l2", { selector: "board=rpi4,rev=2" });
    create("l3", { selector: "board=qemu" });
    h.expectSummaries({ l1: "Ready/Ready@alpha", l2: "Pending/NotAvailable", l3: "Ready/Ready@beta" });
  });

  test("exporters become eligible on register, stream open and AVAILABLE, and the waiting lease gets them", () => {
    h.state.createExporter(NS, "exp-a", { board: "rpi4" });
    create("l1", { selector: "board=rpi4" });
    h.expectSummaries({ l1: "Pending/Offline" });
    h.state.register(NS, "exp-a", {}, []);
    h.expectSummaries({ l1: "Pending/Offline" });
    h.state.statusStreamOpened(NS, "exp-a");
    h.expectSummaries({ l1: "Ready/Ready@exp-a" });
  });
});

describe("pins, selectors and unsatisfiable leases", () => {
  beforeEach(() => {
    h.onlineExporter("exp-a", { board: "rpi4", rev: "2" });
    h.onlineExporter("exp-b", { board: "rpi4", rev: "3" });
    h.onlineExporter("exp-c", { board: "qemu" });
  });

  test("a pinned lease gets its exporter even when others are free, and waits for it when held", () => {
    create("p1", { exporterName: "exp-b" });
    create("p2", { exporterName: "exp-b", selector: "board=rpi4" });
    h.expectSummaries({ p1: "Ready/Ready@exp-b", p2: "Pending/NotAvailable" });
    h.state.releaseLease(NS, "p1");
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
  ])("selector %p takes %s", (selector, exporter) => {
    expect(create("l", { selector }).exporter).toBe(exporter);
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
  ])("unsatisfiable when %s", (_label, spec, summary, message) => {
    const lease = create("l", spec);
    expect(h.summary("l")).toBe(summary);
    expect(lease.conditions.find((c) => c.type === "Unsatisfiable")?.message).toContain(message);
    expect(lease.effectiveEndTime).toBe(h.clock.time);
  });

  test("disabled exporters: skipped by selectors, refused when pinned unless allowDisabled", () => {
    h.state.disableExporter(NS, "exp-a", "reflashing");
    expect(create("l1", { selector: "board=rpi4" }).exporter).toBe("exp-b");
    create("l2", { exporterName: "exp-a" });
    expect(h.summary("l2")).toBe("Unsatisfiable/ExporterDisabled ended");
    expect(create("l3", { exporterName: "exp-a", allowDisabled: true }).exporter).toBe("exp-a");
    h.state.disableExporter(NS, "exp-c", "broken fan");
    create("l4", { selector: "board=qemu" });
    expect(h.summary("l4")).toBe("Unsatisfiable/AllDisabled ended");
  });

  test("deleting an exporter ends its lease and makes leases pinned to it unsatisfiable", () => {
    create("l1", { exporterName: "exp-a" });
    create("l2", { exporterName: "exp-a" });
    h.state.deleteExporter(NS, "exp-a");
    h.expectSummaries({ l1: "Ready=False/ExporterDeleted@exp-a ended", l2: "Unsatisfiable/ExporterNotFound ended" });
  });
});

describe("time", () => {
  beforeEach(() => {
    h.onlineExporter("exp-a", { board: "rpi4" });
  });

  test("an immediate lease expires at effective begin + duration, counted from when it got the exporter", () => {
    create("first", { selector: "board=rpi4", duration: 10 * MIN });
    create("second", { selector: "board=rpi4", duration: 20 * MIN });
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

  test("a scheduled lease waits until its begin time and ends at begin + duration", () => {
    const begin = h.clock.time + 5 * MIN;
    create("later", { selector: "board=rpi4", beginTime: begin, duration: 10 * MIN });
    expect(h.summary("later")).toBe("Pending/Scheduled");
    create("now", { selector: "board=rpi4", duration: 2 * MIN });
    expect(h.summary("now")).toBe("Ready/Ready@exp-a");
    h.clock.advance(5 * MIN);
    h.expectSummaries({ now: "Ready=False/Expired@exp-a ended", later: "Ready/Ready@exp-a" });
    expect(h.lease("later").effectiveBeginTime).toBe(begin);
    h.clock.advance(10 * MIN - 1);
    expect(h.summary("later")).toBe("Ready/Ready@exp-a");
    h.clock.advance(1);
    expect(h.lease("later").effectiveEndTime).toBe(begin + 10 * MIN);
  });

  test("a requested end time wins, and a window that closes while pending ends the lease unserved", () => {
    const t0 = h.clock.time;
    create("blocker", { selector: "board=rpi4", endTime: t0 + 7 * MIN, duration: 7 * MIN });
    create("window", { selector: "board=rpi4", beginTime: t0, endTime: t0 + 5 * MIN, duration: undefined });
    expect(h.lease("window").duration).toBe(5 * MIN);
    h.clock.advance(5 * MIN);
    expect(h.summary("window")).toBe("Ready=False/Expired ended");
    expect(h.lease("window").exporter).toBeUndefined();
    h.clock.advance(2 * MIN);
    expect(h.summary("blocker")).toBe("Ready=False/Expired@exp-a ended");
  });

  test("extending and shortening an active lease moves its expiry timer", () => {
    const t0 = h.clock.time;
    create("l", { selector: "board=rpi4", duration: 10 * MIN });
    h.state.updateLease(NS, "l", { duration: 60 * MIN }, "alice");
    h.clock.advance(30 * MIN);
    expect(h.summary("l")).toBe("Ready/Ready@exp-a");
    h.state.updateLease(NS, "l", { endTime: t0 + 45 * MIN });
    expect(h.lease("l").duration).toBe(45 * MIN);
    h.clock.advance(15 * MIN);
    expect(h.summary("l")).toBe("Ready=False/Expired@exp-a ended");
  });

  test("the begin time can change only before the lease starts", () => {
    const begin = h.clock.time + 60 * MIN;
    create("l", { selector: "board=rpi4", beginTime: begin, endTime: begin + 10 * MIN, duration: undefined });
    h.state.updateLease(NS, "l", { beginTime: begin - 30 * MIN });
    expect(h.lease("l")).toMatchObject({ beginTime: begin - 30 * MIN, endTime: undefined, duration: 10 * MIN });
    h.clock.advance(30 * MIN);
    expect(h.summary("l")).toBe("Ready/Ready@exp-a");
    expect(() => h.state.updateLease(NS, "l", { beginTime: begin })).toThrow("it has already started");
    expect(() => h.state.updateLease(NS, "l", { endTime: h.clock.time - MIN })).toThrow("must be after begin time");
  });

  test("a lease running for weeks re-arms its timer past the 24.8-day limit of Node timers", () => {
    h.close();
    h = new Harness({ sweepIntervalMs: 7 * 24 * 60 * MIN });
    h.state.createClient(NS, "alice");
    h.onlineExporter("exp-a", { board: "rpi4" });
    const t0 = h.clock.time;
    create("long", { selector: "board=rpi4", duration: 40 * 24 * 60 * MIN });
    h.clock.advance(30 * 24 * 60 * MIN);
    expect(h.summary("long")).toBe("Ready/Ready@exp-a");
    h.clock.advance(10 * 24 * 60 * MIN);
    expect(h.lease("long").effectiveEndTime).toBe(t0 + 40 * 24 * 60 * MIN);
  });
});

describe("restart", () => {
  test("a new ControllerState on the same file keeps leases, queue order and timers", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    h.onlineExporter("exp-b", { board: "rpi4" });
    const t0 = h.clock.time;
    create("r1", { selector: "board=rpi4", duration: 10 * MIN });
    create("r2", { selector: "board=rpi4", duration: 60 * MIN });
    create("p1", { selector: "board=rpi4" });
    create("p2", { selector: "board=rpi4" });
    create("s1", { exporterName: "exp-b", beginTime: t0 + 120 * MIN, duration: 5 * MIN });
    const before = ["r1", "r2", "p1", "p2", "s1"].map((n) => h.lease(n));

    h.crash();
    h.clock.advance(MIN);
    h.open();
    expect(["r1", "r2", "p1", "p2", "s1"].map((n) => h.lease(n))).toEqual(before);
    // The exporters' streams were cut by the crash; they reconnect within the grace period.
    h.state.statusStreamOpened(NS, "exp-a");
    h.state.statusStreamOpened(NS, "exp-b");

    h.clock.advance(9 * MIN);
    h.expectSummaries({ r1: "Ready=False/Expired@exp-a ended", p1: "Ready/Ready@exp-a", p2: "Pending/NotAvailable" });
    h.state.releaseLease(NS, "r2");
    h.expectSummaries({ p2: "Ready/Ready@exp-b" });
    h.state.releaseLease(NS, "p2");
    h.clock.advance(110 * MIN);
    h.expectSummaries({ s1: "Ready/Ready@exp-b" });
  });

  test("stop() disarms every timer; start() arms one per open lease again, plus the sweep", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("running", { selector: "board=rpi4", duration: 10 * MIN });
    create("scheduled", { selector: "board=rpi4", beginTime: h.clock.time + MIN });
    create("queued", { selector: "board=rpi4" });
    expect(h.clock.armed).toBe(3);
    h.state.stop();
    expect(h.clock.armed).toBe(0);
    h.clock.advance(20 * MIN);
    expect(h.summary("running")).toBe("Ready/Ready@exp-a");
    h.state.start();
    h.expectSummaries({ running: "Ready=False/Expired@exp-a ended", scheduled: "Ready/Ready@exp-a", queued: "Pending/NotAvailable" });
  });

  test("leases that expired while the controller was down end at start", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("l", { selector: "board=rpi4", duration: 10 * MIN });
    h.crash();
    h.clock.advance(15 * MIN);
    h.open();
    expect(h.summary("l")).toBe("Ready=False/Expired@exp-a ended");
    expect(h.lease("l").effectiveEndTime).toBe(h.clock.time);
  });
});

describe("offline exporters", () => {
  test("an exporter whose stream closed is offline 5 s later, announced then, keeps its lease but gets no new one until it is back", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("l1", { selector: "board=rpi4" });
    const seen: string[] = [];
    h.state.on("exporter", (e) => seen.push(`${e.online ? "online" : "offline"} ${ExporterStatus[e.status]}`));
    const closedAt = h.clock.time;
    h.state.statusStreamClosed(NS, "exp-a");
    h.clock.advance(4_999);
    expect(h.state.getExporter(NS, "exp-a").online).toBe(true);
    h.clock.advance(1);
    const exporter = h.state.getExporter(NS, "exp-a");
    expect(exporter).toMatchObject({ online: false, status: ExporterStatus.OFFLINE, leaseName: "l1", lastSeen: closedAt });
    expect(exporter.statusMessage).toBe(`Connection lost at ${new Date(closedAt).toISOString()}`);
    // Announced when the grace ran out (a timer), not at the next sweep.
    expect(seen).toEqual(["online AVAILABLE", "offline OFFLINE"]);
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");

    h.state.releaseLease(NS, "l1");
    create("l2", { selector: "board=rpi4" });
    expect(h.summary("l2")).toBe("Pending/Offline");
    h.state.statusStreamOpened(NS, "exp-a");
    expect(h.state.getExporter(NS, "exp-a").status).toBe(ExporterStatus.UNSPECIFIED);
    expect(h.summary("l2")).toBe("Ready/Ready@exp-a");
  });

  test("a stream that reconnects within the grace keeps the exporter online throughout", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    h.state.statusStreamClosed(NS, "exp-a");
    h.clock.advance(3_000);
    expect(create("l", { selector: "board=rpi4" }).exporter).toBe("exp-a");
    h.state.statusStreamOpened(NS, "exp-a");
    h.clock.advance(60_000);
    expect(h.state.getExporter(NS, "exp-a")).toMatchObject({ online: true, status: ExporterStatus.AVAILABLE });
  });

  test("after a restart, exporters get upstream's 60 s from their last sign of life to reconnect", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    h.onlineExporter("exp-b", { board: "rpi4" });
    h.crash();
    h.clock.advance(10_000);
    h.open();
    h.state.statusStreamOpened(NS, "exp-a");
    h.clock.advance(45_000);
    expect(h.state.listExporters(NS).map((e) => `${e.name} ${e.online}`)).toEqual(["exp-a true", "exp-b true"]);
    h.clock.advance(5_001);
    expect(h.state.listExporters(NS).map((e) => `${e.name} ${e.online}`)).toEqual(["exp-a true", "exp-b false"]);
    // The next sweep writes it down.
    h.clock.advance(5_000);
    expect(h.state.getExporter(NS, "exp-b").status).toBe(ExporterStatus.OFFLINE);
  });

  test("unregister marks the exporter OFFLINE and unregistered but leaves its lease", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("l1", { selector: "board=rpi4" });
    const e = h.state.unregister(NS, "exp-a", "Exporter shutting down");
    expect(e).toMatchObject({ registered: false, online: false, status: ExporterStatus.OFFLINE, statusMessage: "Exporter shutting down" });
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");
    h.state.releaseLease(NS, "l1");
    create("l2", { selector: "board=rpi4" });
    expect(h.summary("l2")).toBe("Pending/Offline");
  });
});

describe("release, ownership and transfer", () => {
  beforeEach(() => {
    h.onlineExporter("exp-a", { board: "rpi4" });
  });

  test("releasing twice is FailedPrecondition; releasing a pending lease ends it", () => {
    create("l1", { selector: "board=rpi4" });
    create("l2", { selector: "board=rpi4" });
    h.state.releaseLease(NS, "l2");
    expect(h.summary("l2")).toBe("Ready=False/Released ended");
    expect(() => h.state.releaseLease(NS, "l2")).toThrow(expect.objectContaining({ code: Code.FailedPrecondition, message: "lease 'l2' has already been released" }));
    expect(h.summary("l1")).toBe("Ready/Ready@exp-a");
  });

  test("an exporter can release the lease it holds", () => {
    create("l1", { selector: "board=rpi4" });
    expect(h.state.releaseExporterLease(NS, "exp-a")?.name).toBe("l1");
    expect(h.summary("l1")).toBe("Ready=False/Released@exp-a ended");
    expect(h.state.releaseExporterLease(NS, "exp-a")).toBeNull();
  });

  test("another client's lease is NotFound for get, update and release", () => {
    create("l1", { selector: "board=rpi4" });
    const nf = expect.objectContaining({ code: Code.NotFound, message: "lease 'l1' not found in namespace 'default'" });
    expect(() => h.state.getLease(NS, "l1", "bob")).toThrow(nf);
    expect(() => h.state.updateLease(NS, "l1", { duration: MIN }, "bob")).toThrow(nf);
    expect(() => h.state.releaseLease(NS, "l1", "bob")).toThrow(nf);
    expect(h.state.getLease(NS, "l1", "alice").client).toBe("alice");
  });

  test("an active lease can be transferred to another existing client", () => {
    create("l1", { selector: "board=rpi4" });
    create("l2", { selector: "board=rpi4" });
    expect(() => h.state.updateLease(NS, "l2", { client: "bob" }, "alice")).toThrow("it has not started yet");
    expect(() => h.state.updateLease(NS, "l1", { client: "carol" }, "alice")).toThrow("client 'carol' not found");
    expect(h.state.updateLease(NS, "l1", { client: "bob" }, "alice").client).toBe("bob");
    expect(() => h.state.releaseLease(NS, "l1", "alice")).toThrow("not found");
    h.state.releaseLease(NS, "l1", "bob");
    expect(() => h.state.updateLease(NS, "l1", { duration: MIN }, "bob")).toThrow("lease 'l1' has already ended");
  });
});

describe("listing and events", () => {
  test("listLeases filters by activity, client, lease labels and tags", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    create("l1", { selector: "board=rpi4,rev!=1", tags: { ci: "yes" } });
    create("l2", { selector: "board=rpi4", tags: { ci: "no" } }, "bob");
    create("l3", { selector: "board=gone" });
    const names = (leases: Lease[]) => leases.map((l) => l.name);
    expect(names(h.state.listLeases(NS))).toEqual(["l1", "l2"]);
    expect(names(h.state.listLeases(NS, { onlyActive: false }))).toEqual(["l1", "l2", "l3"]);
    expect(names(h.state.listLeases(NS, { client: "bob" }))).toEqual(["l2"]);
    expect(names(h.state.listLeases(NS, { selector: "metadata.jumpstarter.dev/ci=yes" }))).toEqual(["l1"]);
    expect(names(h.state.listLeases(NS, { selector: "board=rpi4", tags: "ci in (no)" }))).toEqual(["l2"]);
    expect(() => h.state.listLeases(NS, { tags: "ci=" + "x".repeat(64) })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  });

  test("events fire after commit with the committed state; a failed change fires none", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    const seen: string[] = [];
    h.state.on("lease", (l) => seen.push(`lease ${l.name} ${h.summary(l.name)}`));
    const off = h.state.on("exporter", (e) => seen.push(`exporter ${e.name} ${e.leaseName}`));
    create("l1", { selector: "board=rpi4" });
    expect(seen).toEqual(["lease l1 Ready/Ready@exp-a", "exporter exp-a l1"]);
    seen.length = 0;
    expect(() => create("l1", { selector: "board=rpi4" })).toThrow("already exists");
    expect(seen).toEqual([]);
    off();
    h.state.releaseLease(NS, "l1");
    expect(seen).toEqual(["lease l1 Ready=False/Released@exp-a ended"]);
  });

  test("lease names default to UUIDv7, in creation order", () => {
    h.onlineExporter("exp-a", { board: "rpi4" });
    const a = h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN });
    h.clock.advance(1);
    const b = h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN });
    expect(a.name).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.name < b.name).toBe(true);
    expect(parseInt(a.name.replace("-", "").slice(0, 12), 16)).toBe(a.createdAt);
  });
});
