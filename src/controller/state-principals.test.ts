import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { ControllerError } from "./errors.ts";
import type { LeaseRequest, PrincipalRef } from "./model.ts";
import { Harness, MIN, NS } from "./state-harness.ts";

let h: Harness;

beforeEach(async () => {
  h = new Harness();
});

afterEach(() => h.close());

const code = (c: Code, message: string) => expect.objectContaining({ code: c, message: expect.stringContaining(message) });

describe("clients and exporters", () => {
  test("names are DNS labels, labels are Kubernetes labels, duplicates are AlreadyExists", async () => {
    const client = await h.state.createClient(NS, "alice", { team: "qa" });
    expect(client).toMatchObject({ namespace: NS, name: "alice", labels: { team: "qa" }, createdAt: h.clock.time });
    await expect(h.state.createClient(NS, "alice")).rejects.toThrow(code(Code.AlreadyExists, "client 'alice' already exists in namespace 'default'"));
    await expect(h.state.createClient(NS, "Alice")).rejects.toThrow(code(Code.InvalidArgument, "client name 'Alice' must be 1-63 lower-case"));
    await expect(h.state.createClient(NS, "a".repeat(64))).rejects.toThrow(code(Code.InvalidArgument, "must be 1-63"));
    await expect(h.state.createClient("Lab_1", "x")).rejects.toThrow(code(Code.InvalidArgument, "namespace 'Lab_1'"));
    await expect(h.state.createExporter(NS, "pi", { "bad key": "1" })).rejects.toThrow(code(Code.InvalidArgument, "exporter labels: key name 'bad key'"));
    await h.state.createExporter(NS, "pi");
    await expect(h.state.createExporter(NS, "pi")).rejects.toThrow(code(Code.AlreadyExists, "exporter 'pi' already exists"));
    await h.state.createClient("lab2", "alice");
    expect(h.state.listClients(NS).map((c) => c.name)).toEqual(["alice"]);
    expect(() => h.state.getClient(NS, "bob")).toThrow(code(Code.NotFound, "client 'bob' not found in namespace 'default'"));
    expect(() => h.state.getExporter(NS, "nope")).toThrow(code(Code.NotFound, "exporter 'nope' not found"));
  });

  test("a new exporter is enabled, unregistered, never seen and offline", async () => {
    expect(await h.state.createExporter(NS, "pi", { board: "rpi4" })).toMatchObject({
      enabled: true,
      registered: false,
      lastSeen: null,
      leaseName: null,
      online: false,
      status: ExporterStatus.UNSPECIFIED,
      devices: [],
    });
  });

  test("listExporters filters by selector and rejects a bad one as InvalidArgument", async () => {
    await h.state.createExporter(NS, "pi-1", { board: "rpi4" });
    await h.state.createExporter(NS, "pi-2", { board: "rpi5" });
    await h.state.createExporter(NS, "vm", {});
    expect(h.state.listExporters(NS, { selector: "board in (rpi4,rpi5),board!=rpi5" }).map((e) => e.name)).toEqual(["pi-1"]);
    expect(h.state.listExporters(NS).map((e) => e.name)).toEqual(["pi-1", "pi-2", "vm"]);
    expect(() => h.state.listExporters(NS, { selector: "board=rpi4,,x" })).toThrow(
      code(Code.InvalidArgument, "'board=rpi4,,x' is not a label selector: empty requirement at 12"),
    );
  });

  test("deleteClient releases all its leases, hands the exporter on, and revokes its tokens", async () => {
    const revoked: PrincipalRef[] = [];
    h.state.on("revoked", (r) => revoked.push(r));
    await h.state.createClient(NS, "alice");
    await h.state.createClient(NS, "bob");
    await h.onlineExporter("pi", { board: "rpi4" });
    await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN }, "a1");
    await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN }, "a2");
    await h.state.createLease(NS, "bob", { selector: "board=rpi4", duration: MIN }, "b1");
    await h.state.deleteClient(NS, "alice");
    h.expectSummaries({ a1: "Ready=False/Released@pi ended", a2: "Ready=False/Released ended", b1: "Ready/Ready@pi" });
    expect(h.lease("a2")).toMatchObject({ released: true, ended: true });
    expect(revoked).toEqual([{ kind: "Client", namespace: NS, name: "alice" }]);
    expect(() => h.state.getClient(NS, "alice")).toThrow(code(Code.NotFound, "client 'alice' not found"));
    await expect(h.state.deleteClient(NS, "alice")).rejects.toThrow(code(Code.NotFound, "client 'alice' not found"));
  });

  test("rotateToken gives a new token id and revokes the old tokens", async () => {
    const revoked: PrincipalRef[] = [];
    h.state.on("revoked", (r) => revoked.push(r));
    const client = await h.state.createClient(NS, "alice");
    const exporter = await h.state.createExporter(NS, "pi");
    const newClientToken = await h.state.rotateToken("Client", NS, "alice");
    const newExporterToken = await h.state.rotateToken("Exporter", NS, "pi");
    expect(newClientToken).not.toBe(client.tokenId);
    expect(newClientToken).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(h.state.getClient(NS, "alice").tokenId).toBe(newClientToken);
    expect(newExporterToken).not.toBe(exporter.tokenId);
    expect(h.state.getExporter(NS, "pi").tokenId).toBe(newExporterToken);
    expect(revoked).toEqual([
      { kind: "Client", namespace: NS, name: "alice" },
      { kind: "Exporter", namespace: NS, name: "pi" },
    ]);
    await expect(h.state.rotateToken("Client", NS, "bob")).rejects.toThrow(code(Code.NotFound, "client 'bob' not found"));
  });
});

describe("writes and their events", () => {
  test("rotating a token is announced as a revocation only, for a client as for an exporter", async () => {
    await h.state.createClient(NS, "alice");
    await h.onlineExporter("pi");
    const events: string[] = [];
    h.state.on("revoked", (r) => events.push(`revoked ${r.kind} ${r.name}`));
    h.state.on("exporter", (e) => events.push(`exporter ${e.name}`));
    h.state.on("lease", (l) => events.push(`lease ${l.name}`));
    await h.state.rotateToken("Client", NS, "alice");
    await h.state.rotateToken("Exporter", NS, "pi");
    expect(events).toEqual(["revoked Client alice", "revoked Exporter pi"]);
  });

  test("one event per changed object per transaction, carrying its last version", async () => {
    await h.state.createClient(NS, "alice");
    await h.onlineExporter("pi", { board: "rpi4" });
    const events: string[] = [];
    h.state.on("exporter", (e) => events.push(`exporter ${e.name} ${e.leaseName}`));
    h.state.on("lease", (l) => events.push(`lease ${l.name} ${l.exporter}`));
    await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN }, "l1");
    expect(events).toEqual(["lease l1 pi", "exporter pi l1"]);
    events.length = 0;
    await h.state.deleteExporter(NS, "pi");
    expect(events).toEqual(["lease l1 pi"]);
  });
});

/** Never run: tsc checks that the store offers no write outside a transaction. */
export function _writesNeedATransaction(h: Harness): void {
  // @ts-expect-error: writes go through the StoreWriter that `transaction` hands in
  h.store.updateLease(h.lease("l"));
  // @ts-expect-error: likewise for exporters
  h.store.updateExporter(h.state.getExporter(NS, "pi"));
  h.store.transaction((w) => w.updateLease(h.lease("l")));
}

describe("exporter lifecycle", () => {
  test("register takes only jumpstarter.dev/* labels from the exporter and stores its reports", async () => {
    await h.state.createExporter(NS, "pi", { board: "rpi4", "jumpstarter.dev/name": "old", "jumpstarter.dev/stale": "x" });
    const devices = [{ uuid: "u1", labels: { "jumpstarter.dev/client": "a.B" }, methodsDescription: {} }];
    const e = await h.state.register(NS, "pi", { board: "hacked", "jumpstarter.dev/name": "pi" }, devices);
    expect(e.labels).toEqual({ board: "rpi4", "jumpstarter.dev/name": "pi" });
    expect(e).toMatchObject({ registered: true, devices });
    await expect(h.state.register(NS, "pi", { "jumpstarter.dev/name": "Not Valid" }, [])).rejects.toThrow(
      code(Code.InvalidArgument, "labels registered by exporter 'pi'"),
    );
  });

  test("reportStatus and heartbeat keep an exporter that never opened a Status stream online, as upstream", async () => {
    await h.state.createExporter(NS, "pi");
    await h.state.register(NS, "pi", {}, []);
    await h.state.heartbeat(NS, "pi");
    h.clock.advance(50_000);
    await h.state.heartbeat(NS, "pi");
    h.clock.advance(50_000);
    await h.state.reportStatus(NS, "pi", ExporterStatus.LEASE_READY, "Ready");
    h.clock.advance(50_000);
    expect(h.state.getExporter(NS, "pi")).toMatchObject({ online: true, status: ExporterStatus.LEASE_READY, statusMessage: "Ready" });
    h.clock.advance(15_000);
    expect(h.state.getExporter(NS, "pi")).toMatchObject({ online: false, status: ExporterStatus.OFFLINE });
  });

  test("once its stream has closed, an exporter's status reports do not keep it online: the stream decides", async () => {
    await h.onlineExporter("pi");
    await h.state.statusStreamClosed(NS, "pi");
    h.clock.advance(1_000);
    await h.state.reportStatus(NS, "pi", ExporterStatus.AVAILABLE, "");
    h.clock.advance(4_000);
    expect(h.state.getExporter(NS, "pi")).toMatchObject({ online: false, status: ExporterStatus.OFFLINE });
  });

  test("the sweep refreshes lastSeen while a stream is open, every 10 s, without announcing it", async () => {
    await h.onlineExporter("pi");
    const opened = h.clock.time;
    const seen: string[] = [];
    h.state.on("exporter", (e) => seen.push(e.name));
    h.clock.advance(5_000);
    expect(h.state.getExporter(NS, "pi").lastSeen).toBe(opened);
    h.clock.advance(5_000);
    expect(h.state.getExporter(NS, "pi").lastSeen).toBe(opened + 10_000);
    expect(seen).toEqual([]);
  });

  test("a stream closing after its exporter was deleted is not an error", async () => {
    await h.onlineExporter("pi");
    await h.state.deleteExporter(NS, "pi");
    expect(await h.state.statusStreamClosed(NS, "pi")).toBeNull();
    await expect(h.state.statusStreamOpened(NS, "pi")).rejects.toThrow(code(Code.NotFound, "exporter 'pi' not found"));
  });
});

describe("lease validation", () => {
  beforeEach(async () => {
    await h.state.createClient(NS, "alice");
    await h.onlineExporter("pi", { board: "rpi4" });
  });

  const t0 = Date.UTC(2026, 0, 1);
  test.each([
    ["neither selector nor pin", { duration: MIN }, "a lease needs a selector or an exporter name"],
    ["a bad selector", { selector: "board=rpi4,,x", duration: MIN }, "'board=rpi4,,x' is not a label selector: empty requirement at 12"],
    ["no duration", { selector: "board=rpi4" }, "duration is required"],
    ["an end time alone", { selector: "board=rpi4", endTime: t0 + MIN }, "duration is required"],
    ["a negative duration", { selector: "board=rpi4", duration: -MIN }, "duration must be positive, got -60000 ms"],
    ["end before begin", { selector: "board=rpi4", beginTime: t0, endTime: t0 - MIN }, "must be after begin time"],
    [
      "three times that disagree",
      { selector: "board=rpi4", beginTime: t0, endTime: t0 + MIN, duration: 2 * MIN },
      "duration 120000 ms conflicts with begin time 2026-01-01T00:00:00.000Z and end time 2026-01-01T00:01:00.000Z",
    ],
    [
      "11 tags",
      { selector: "board=rpi4", duration: MIN, tags: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`t${i}`, "x"])) },
      "a lease takes at most 10 tags, got 11",
    ],
    ["a tag key with '/'", { selector: "board=rpi4", duration: MIN, tags: { "a/b": "x" } }, "tag key 'a/b' must be a plain name"],
    ["a bad tag value", { selector: "board=rpi4", duration: MIN, tags: { ci: "no way" } }, "tag 'ci': value 'no way'"],
    [
      "9 context entries",
      { selector: "board=rpi4", duration: MIN, context: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"])) },
      "a lease takes at most 8 context entries, got 9",
    ],
    ["a 33-character context key", { selector: "board=rpi4", duration: MIN, context: { ["k".repeat(33)]: "v" } }, "must be 1-32 characters"],
    [
      "a 65-character context value",
      { selector: "board=rpi4", duration: MIN, context: { build: "v".repeat(65) } },
      "context value of 'build' must be at most 64 characters, got 65",
    ],
  ] as [string, LeaseRequest, string][])("InvalidArgument for %s", async (_label, spec, message) => {
    await expect(h.state.createLease(NS, "alice", spec)).rejects.toThrow(code(Code.InvalidArgument, message));
    expect(h.state.listLeases(NS, { onlyActive: false })).toEqual([]);
  });

  test("bad or duplicate lease ids and unknown clients", async () => {
    const spec = { selector: "board=rpi4", duration: MIN };
    await expect(h.state.createLease(NS, "alice", spec, "Not_An_Id")).rejects.toThrow(code(Code.InvalidArgument, "lease id 'Not_An_Id'"));
    await h.state.createLease(NS, "alice", spec, "my-lease");
    await expect(h.state.createLease(NS, "alice", spec, "my-lease")).rejects.toThrow(code(Code.AlreadyExists, "lease 'my-lease' already exists"));
    await expect(h.state.createLease(NS, "mallory", spec)).rejects.toThrow(code(Code.NotFound, "client 'mallory' not found"));
    await expect(h.state.createLease(NS, "mallory", spec)).rejects.toThrow(ControllerError);
  });

  test("end + duration give the begin time; limits at exactly 10 tags and 8 context entries pass", async () => {
    const lease = await h.state.createLease(NS, "alice", {
      selector: " board = rpi4 ",
      endTime: t0 + 90 * MIN,
      duration: 30 * MIN,
      tags: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`t${i}`, "x"])),
      context: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`.padEnd(32, "k"), "v".repeat(64)])),
    });
    expect(lease).toMatchObject({ selector: "board=rpi4", beginTime: t0 + 60 * MIN, endTime: t0 + 90 * MIN, duration: 30 * MIN });
    expect(h.summary(lease.name)).toBe("Pending/Scheduled");
  });
});
