import { afterEach, beforeEach, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import type { HealthReport } from "./model.ts";
import { Harness, MIN, NS } from "./state-harness.ts";

let h: Harness;

beforeEach(async () => {
  h = await Harness.withAliceAndPi1();
});

afterEach(() => h.close());

const create = (name: string, spec: Parameters<Harness["state"]["createLease"]>[2]) =>
  h.state.createLease(NS, "alice", { duration: 30 * MIN, ...spec }, name);

const report = (health: HealthReport | null, status = ExporterStatus.AVAILABLE) =>
  h.state.reportStatus(NS, "pi-1", status, "", health);

const failed = (checkId: string, message = "no login prompt"): HealthReport => ({ state: "unhealthy", message, checkId, checkedAt: 1 });
const message = (lease: string) => h.lease(lease).conditions.find((c) => c.status === "True")?.message;

test("disable: the lease in progress goes on, no new one, a pinned one with allowDisabled still; the reason is kept and shown", async () => {
  await create("running", { selector: "board=rpi4" });
  const e = await h.state.disableExporter(NS, "pi-1", "  reflashing the SD card ");
  expect(e).toMatchObject({ enabled: false, disabledReason: "reflashing the SD card", leaseName: "running" });
  await h.state.releaseLease(NS, "running");
  await create("by-label", { selector: "board=rpi4" });
  await create("pinned", { exporterName: "pi-1" });
  h.expectSummaries({ "by-label": "Unsatisfiable/AllDisabled ended", pinned: "Unsatisfiable/ExporterDisabled ended" });
  expect(message("by-label")).toBe("All 1 exporter matching the selector are disabled (e.g. pi-1: reflashing the SD card)");
  expect(message("pinned")).toContain("pi-1 is disabled (reflashing the SD card); lease it with allow-disabled");
  await create("investigate", { exporterName: "pi-1", allowDisabled: true });
  h.expectSummaries({ investigate: "Ready/Ready@pi-1" });

  await h.state.releaseLease(NS, "investigate");
  expect(await h.state.enableExporter(NS, "pi-1")).toMatchObject({ enabled: true, disabledReason: "" });
  await create("after", { selector: "board=rpi4" });
  h.expectSummaries({ after: "Ready/Ready@pi-1" });
});

test("disable needs a short reason", async () => {
  for (const reason of ["", "   ", "x".repeat(201)]) {
    let code: Code | undefined;
    try {
      await h.state.disableExporter(NS, "pi-1", reason);
    } catch (e) {
      code = (e as { code: Code }).code;
    }
    expect(code).toBe(Code.InvalidArgument);
  }
  expect(h.state.getExporter(NS, "pi-1").enabled).toBe(true);
});

test("a failed health check: leases wait, saying why; a passing check lets them in", async () => {
  await report(failed("c1"));
  await create("waiting", { selector: "board=rpi4" });
  h.expectSummaries({ waiting: "Pending/Unhealthy" });
  expect(message("waiting")).toBe(
    "exporter pi-1 failed its health check (no login prompt); it takes leases again once a check passes or an admin enables it",
  );
  await report({ state: "checking", message: "", checkId: "c2" });
  h.expectSummaries({ waiting: "Pending/NotReady" });
  expect(message("waiting")).toBe("exporter pi-1 is running its health check");
  await report({ state: "healthy", message: "", checkId: "c2", checkedAt: 2 });
  h.expectSummaries({ waiting: "Ready/Ready@pi-1" });
});

test("enable overrides the failed run only: the same run reported again stays overridden, a new failure counts", async () => {
  await report(failed("c1"));
  await create("waiting", { selector: "board=rpi4" });
  await h.state.enableExporter(NS, "pi-1");
  expect(h.state.getExporter(NS, "pi-1").health).toMatchObject({ state: "unhealthy", checkId: "c1", overridden: true });
  h.expectSummaries({ waiting: "Ready/Ready@pi-1" });
  await h.state.releaseLease(NS, "waiting");

  await report(failed("c1"));
  await create("same-run", { selector: "board=rpi4" });
  h.expectSummaries({ "same-run": "Ready/Ready@pi-1" });
  await h.state.releaseLease(NS, "same-run");

  await report(failed("c2", "fan stopped"));
  await create("new-failure", { selector: "board=rpi4" });
  h.expectSummaries({ "new-failure": "Pending/Unhealthy" });
});

test("an unhealthy exporter is leased when pinned with allowDisabled; without a report (upstream's exporters) health stays as it was", async () => {
  await report(failed("c1"));
  await create("pinned", { exporterName: "pi-1" });
  h.expectSummaries({ pinned: "Pending/Unhealthy" });
  await h.state.releaseLease(NS, "pinned");
  await create("investigate", { exporterName: "pi-1", allowDisabled: true });
  h.expectSummaries({ investigate: "Ready/Ready@pi-1" });
  await h.state.reportStatus(NS, "pi-1", ExporterStatus.LEASE_READY, "");
  expect(h.state.getExporter(NS, "pi-1").health?.state).toBe("unhealthy");
  await report(null, ExporterStatus.LEASE_READY);
  expect(h.state.getExporter(NS, "pi-1").health).toBeNull();
});

test("maintenance and health survive a controller restart", async () => {
  await h.onlineExporter("pi-2", { board: "rpi4" });
  await h.state.disableExporter(NS, "pi-2", "broken fan");
  await report(failed("c1"));
  h.crash();
  h.open();
  expect(h.state.getExporter(NS, "pi-2")).toMatchObject({ enabled: false, disabledReason: "broken fan" });
  expect(h.state.getExporter(NS, "pi-1").health).toMatchObject({ state: "unhealthy", message: "no login prompt", checkId: "c1" });
});
