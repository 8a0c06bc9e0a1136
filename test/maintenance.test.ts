/**
 * Maintenance and health checks end to end through the controller, on dist/jmp:
 * `jmp admin exporter disable/enable`, an exporter's `hooks.healthCheck`, what
 * clients see of both (`jmp exporter list`, `jmp lease get`), and that the
 * controller keeps both across a restart.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { Lab, type LeaseJson } from "./distributed/lab.ts";
import { tempDir } from "./helpers.ts";

const files = tempDir("jmp-maintenance-");
/** While this file exists, the health check of exporter "checked" fails. */
const broken = `${files.path}/broken`;

let lab: Lab;

interface ExporterRow {
  name: string;
  enabled: boolean;
  disabledReason: string;
  health: { state: string; message: string; overridden: boolean; checkedAt?: string } | null;
}

beforeAll(async () => {
  lab = await Lab.start();
  await lab.addClient("alice");
  await lab.addExporter("bench", { board: "rpi4", role: "maint" });
  const file = await lab.addExporter("checked", { board: "rpi4", role: "health" });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  writeFileSync(file, stringify({
    ...doc,
    hooks: {
      healthCheck: {
        script: `j power read -n 1 >/dev/null && echo "power meter answers"\nif [ -e ${broken} ]; then echo "no login prompt on the console"; exit 1; fi\n`,
        every: 1,
        interval: "2s",
        timeout: 20,
      },
    },
  }));
  await Promise.all([lab.runExporter("bench"), lab.runExporter("checked")]);
}, 30_000);

afterAll(async () => {
  await lab?.close();
  files.remove();
}, 30_000);

const rows = async (): Promise<ExporterRow[]> => JSON.parse(await lab.ok(["exporter", "list", "--client", "alice", "-o", "json"])) as ExporterRow[];
const row = async (name: string) => (await rows()).find((r) => r.name === name)!;
const create = async (...args: string[]): Promise<{ code: number; lease?: LeaseJson; stderr: string }> => {
  const r = await lab.jmp(["lease", "create", "--duration", "5m", "--client", "alice", "-o", "json", ...args]);
  return { code: r.code, lease: r.code === 0 ? (JSON.parse(r.stdout) as LeaseJson[])[0] : undefined, stderr: r.stderr };
};

test("disable with a reason: the lease in progress goes on, no new lease, clients see why; -n --allow-disabled still leases it; enable puts it back", async () => {
  const held = (await create("-l", "role=maint")).lease!;
  expect(held.state).toBe("Ready");
  expect(await lab.admin("exporter", "disable", "bench", "--reason", "reflashing the SD card")).toBe(
    `disabled exporter default/bench: reflashing the SD card (its lease ${held.name} goes on)\n`,
  );
  // The lease it holds still works.
  const using = await lab.jmp(["shell", "--lease", held.name, "--client", "alice", "--", "j", "power", "on"]);
  expect(using.code).toBe(0);

  expect(await row("bench")).toMatchObject({ enabled: false, disabledReason: "reflashing the SD card" });
  const table = await lab.ok(["exporter", "list", "--client", "alice"]);
  expect(table.split("\n")[0]).toMatch(/NAME\s+LABELS\s+ENABLED\s+HEALTH/);
  expect(table).toMatch(/bench\s+board=rpi4,role=maint\s+no: reflashing the SD card/);

  await lab.ok(["lease", "delete", held.name, "--client", "alice"]);
  await lab.doneWith("bench", held.name);
  const bySelector = await create("-l", "role=maint");
  expect(bySelector.code).toBe(1);
  expect(bySelector.stderr).toContain("All 1 exporter matching the selector are disabled (e.g. bench: reflashing the SD card)");
  const pinned = await create("-n", "bench");
  expect(pinned.stderr).toContain("Requested exporter bench is disabled (reflashing the SD card); lease it with allow-disabled");

  const investigate = await lab.jmp(["shell", "-n", "bench", "--allow-disabled", "--client", "alice", "--", "j", "power", "on"]);
  expect(investigate.code).toBe(0);
  await lab.exporterUntil("bench", (e) => e.lease === "" && e.status === "AVAILABLE", "to be done with the investigation");

  expect(await lab.admin("exporter", "enable", "bench")).toBe("enabled exporter default/bench\n");
  expect(await row("bench")).toMatchObject({ enabled: true, disabledReason: "" });
  const after = (await create("-l", "role=maint")).lease!;
  expect(after.state).toBe("Ready");
  await lab.ok(["lease", "delete", after.name, "--client", "alice"]);
});

test("a failing health check takes the exporter out of scheduling, with its reason in exporter list and in the waiting lease; a passing check puts it back", async () => {
  await eventually(async () => expect((await row("checked")).health).toMatchObject({ state: "healthy" }), { what: "the check at start to pass", timeout: 15_000 });
  writeFileSync(broken, "");
  // every: 1: the check after this lease finds the board broken.
  const used = await lab.jmp(["shell", "-l", "role=health", "--client", "alice", "--", "j", "power", "on"]);
  expect(used.code).toBe(0);
  await eventually(async () => expect((await row("checked")).health).toMatchObject({ state: "unhealthy" }), { what: "the check after the lease to fail", timeout: 15_000 });
  const table = await lab.ok(["exporter", "list", "-l", "role=health", "--client", "alice"]);
  expect(table).toMatch(/checked\s+board=rpi4,role=health\s+failing: exit code 1; last output: "no login prompt on the console"/);

  const waiting = (await create("-l", "role=health")).lease!;
  expect(waiting.state).toBe("Pending");
  const get = await lab.ok(["lease", "get", waiting.name, "--client", "alice"]);
  expect(get).toContain("Pending=True Unhealthy: exporter checked failed its health check (exit code 1; last output: \"no login prompt on the console\")");

  rmSync(broken);
  // interval: 2s, so the next check, between leases, finds the board well again.
  await eventually(async () => expect((await lab.lease(waiting.name, "alice")).state).toBe("Ready"), { what: "the waiting lease to get the exporter", timeout: 15_000 });
  expect((await row("checked")).health).toMatchObject({ state: "healthy", message: "" });
  await lab.ok(["lease", "delete", waiting.name, "--client", "alice"]);
  await lab.doneWith("checked", waiting.name);
}, 60_000);

test("jmp admin exporter enable overrides a failed check until the next check; maintenance and health survive a controller restart", async () => {
  writeFileSync(broken, "");
  await eventually(async () => expect((await row("checked")).health).toMatchObject({ state: "unhealthy" }), { what: "an interval check to fail", timeout: 15_000 });
  await lab.admin("exporter", "disable", "bench", "--reason", "broken fan");

  // The controller restarts with the exporter that checks gone: what it shows is what it stored.
  const checked = lab.exporters.get("checked")!;
  await checked.stop();
  // From now on it checks at its start and after each lease only: an override is not raced by interval checks.
  const file = readFileSync(`${lab.env.JMP_CLIENT_CONFIG_HOME}/exporters/checked.yaml`, "utf8");
  const doc = parse(file) as { hooks: { healthCheck: Record<string, unknown> } };
  delete doc.hooks.healthCheck.interval;
  writeFileSync(`${lab.env.JMP_CLIENT_CONFIG_HOME}/exporters/checked.yaml`, stringify(doc));
  lab.controller.signal("SIGTERM");
  expect(await lab.controller.exited()).toBe(143);
  await lab.startController();
  const stored = Object.fromEntries((await rows()).map((r) => [r.name, r]));
  expect(stored.bench).toMatchObject({ enabled: false, disabledReason: "broken fan" });
  expect(stored.checked!.health).toMatchObject({ state: "unhealthy", message: 'exit code 1; last output: "no login prompt on the console"' });

  await lab.runExporter("checked");
  // Its check at start fails again: a new run, finished after the one the controller had stored.
  await eventually(async () => {
    const health = (await row("checked")).health!;
    expect(health.state).toBe("unhealthy");
    expect(health.checkedAt).not.toBe(stored.checked!.health!.checkedAt);
  }, { what: "the check at start to fail" });
  const waiting = (await create("-l", "role=health")).lease!;
  expect(waiting).toMatchObject({ state: "Pending", reason: "Unhealthy" });
  await lab.admin("exporter", "enable", "checked");
  await eventually(async () => expect((await lab.lease(waiting.name, "alice")).state).toBe("Ready"), { what: "the lease to get the overridden exporter" });
  expect((await row("checked")).health).toMatchObject({ state: "unhealthy", overridden: true });
  expect(await lab.ok(["exporter", "list", "-l", "role=health", "--client", "alice"])).toContain("failing, enabled by an admin: exit code 1");
  await lab.ok(["lease", "delete", waiting.name, "--client", "alice"]);
  // every: 1: the check after that lease fails again, and counts again.
  await eventually(async () => expect((await row("checked")).health).toMatchObject({ state: "unhealthy", overridden: false }), { what: "a new failure to count", timeout: 15_000 });
  if (existsSync(broken)) rmSync(broken);
  await lab.admin("exporter", "enable", "bench");
}, 60_000);
