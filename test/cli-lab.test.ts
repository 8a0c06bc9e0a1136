/**
 * The command line against a real controller (test/distributed/lab.ts): repeatable
 * flags of the client, admin and controller commands given twice, and completion of
 * the names only the controller knows. The controller hands out two standalone
 * routers (`--router-endpoint` twice); two exporters differ by one label.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_CONFIG_FILE } from "../src/common/client-config.ts";
import { Lab, type LeaseJson } from "./distributed/lab.ts";
import { eventually } from "../src/api/eventually.ts";
import { freePort, jmp, tcpAccepts } from "./helpers.ts";

let lab: Lab;
const routers: Awaited<ReturnType<Lab["spawn"]>>[] = [];

beforeAll(async () => {
  lab = new Lab();
  try {
    lab.port = await freePort();
    const ports = [await freePort(), await freePort()];
    lab.controller = lab.spawn("the controller", [
      "controller", "run", "--data-dir", lab.dataDir, "--listen", lab.endpoint, "--advertise", lab.endpoint,
      "--router-endpoint", `127.0.0.1:${ports[0]}`, `--router-endpoint=127.0.0.1:${ports[1]}`,
    ]);
    await eventually(() => tcpAccepts(lab.port), { what: "the controller to listen", interval: 20, timeout: 15_000, signal: lab.controller.running });
    // Its first start writes admin.yaml (which `jmp admin` reads) just after the port accepts.
    await eventually(() => statSync(join(lab.dataDir, ADMIN_CONFIG_FILE)), { what: `the controller to write ${ADMIN_CONFIG_FILE}`, interval: 20, signal: lab.controller.running });
    for (const port of ports) {
      const router = lab.spawn(`router :${port}`, ["router", "run", "--listen", `127.0.0.1:${port}`, "--data-dir", lab.dataDir]);
      await eventually(() => tcpAccepts(port), { what: `the router to listen on ${port}`, interval: 20, timeout: 15_000, signal: router.running });
      routers.push(router);
    }
    // addExporter gives each label as its own -l.
    await lab.addExporter("pi-1", { board: "rpi4", site: "lab2" });
    await lab.addExporter("pi-2", { board: "rpi4", site: "lab3" });
    await lab.addClient("alice");
    await Promise.all([lab.runExporter("pi-1"), lab.runExporter("pi-2")]);
  } catch (e) {
    await lab.close();
    throw e;
  }
}, 60_000);

afterAll(() => lab?.close());

const asAlice = ["--client", "alice"];

test("admin create exporter|client -l K=V -l K=V registers every label", async () => {
  const exporters = JSON.parse(await lab.ok(["exporter", "list", ...asAlice, "-o", "json"])) as { name: string; labels: Record<string, string> }[];
  expect(exporters.find((e) => e.name === "pi-1")?.labels).toMatchObject({ board: "rpi4", site: "lab2" });
  await lab.admin("create", "client", "carol", "-l", "team=qa", "--labels=site=lab2", "--out", `${lab.dir.path}/carol.yaml`);
  const clients = JSON.parse(await lab.admin("get", "clients", "-o", "json")) as { name: string; labels: Record<string, string> }[];
  expect(clients.find((c) => c.name === "carol")?.labels).toMatchObject({ team: "qa", site: "lab2" });
});

test("lease create -l -l --tag --tag, lease list -l -l, shell -l -l: every value counts", async () => {
  // The last selector alone (board=rpi4) would take pi-1, the first free one.
  const out = await lab.ok(["lease", "create", "-l", "site=lab3", "-l", "board=rpi4", "--tag", "team=qa", "--tag=ci=nightly", "--duration", "10m", ...asAlice, "-o", "json"]);
  const lease = (JSON.parse(out) as (LeaseJson & { tags: Record<string, string> })[])[0]!;
  expect(lease.exporter).toBe("pi-2");
  expect(lease.selector.split(",").sort()).toEqual(["board=rpi4", "site=lab3"]);
  expect(lease.tags).toEqual({ team: "qa", ci: "nightly" });
  const other = await lab.createLease("alice", "board=rpi4,site=lab2");
  const listed = await lab.ok(["lease", "list", "-l", "site=lab3", "-l", "board=rpi4", ...asAlice, "-o", "name"]);
  expect(listed.trim().split("\n")).toEqual([lease.name]);
  await lab.ok(["lease", "delete", lease.name, other.name, ...asAlice]);

  const shell = await lab.jmp(["shell", "-l", "site=lab3", "-l", "board=rpi4", ...asAlice, "--", "sh", "-c", 'echo "$JMP_EXPORTER"; j power on && j power off']);
  expect(shell.code).toBe(0);
  expect(shell.stdout).toBe("pi-2\n");
});

test("exporter list --with leases --with=status, -l -l: every value counts", async () => {
  const table = await lab.ok(["exporter", "list", ...asAlice, "--with", "leases", "--with=status"]);
  expect(table.split("\n")[0]).toMatch(/STATUS +LEASED BY/);
  const named = await lab.ok(["exporter", "list", ...asAlice, "-l", "site=lab3", "-l", "board=rpi4", "-o", "name"]);
  expect(named).toBe("pi-2\n");
});

test("lease delete run again (its first answer lost, say) says the lease was already released, exit 0; an unknown lease is still an error", async () => {
  const lease = await lab.createLease("alice", "site=lab2");
  expect(await lab.ok(["lease", "delete", lease.name, ...asAlice])).toBe(`released ${lease.name}\n`);
  expect(await lab.ok(["lease", "delete", lease.name, ...asAlice])).toBe(`${lease.name} was already released\n`);
  expect(await lab.ok(["lease", "delete", lease.name, ...asAlice, "-o", "name"])).toBe(`${lease.name}\n`);
  const missing = await lab.jmp(["lease", "delete", "no-such-lease", ...asAlice]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain("no-such-lease");
});

test("controller run --router-endpoint A --router-endpoint B: streams go through both routers", async () => {
  const before = routers.map((r) => r.count("paired"));
  const lease = await lab.createLease("alice", "site=lab2");
  const r = await lab.jmp(["shell", "--lease", lease.name, ...asAlice, "--", "sh", "-c", "j power on && j power off && j power on"]);
  expect(r.code).toBe(0);
  await lab.ok(["lease", "delete", lease.name, ...asAlice]);
  expect(routers.map((router, i) => router.count("paired") > before[i]!)).toEqual([true, true]);
});

test("completion asks the controller for lease and exporter names", async () => {
  const lease = await lab.createLease("alice", "site=lab2");
  try {
    const complete = async (...words: string[]) => {
      const r = await jmp(["__complete", ...words], { env: lab.env });
      expect(r.stderr).toBe("");
      return r.stdout.split("\n").filter(Boolean);
    };
    expect(await complete("lease", "get", ...asAlice, "")).toEqual([lease.name]);
    expect(await complete("delete", "lease", ...asAlice, lease.name.slice(0, 4))).toEqual([lease.name]);
    expect(await complete("shell", ...asAlice, "--lease", "")).toEqual([lease.name]);
    expect(await complete("lease", "create", ...asAlice, "-n", "pi")).toEqual(["pi-1", "pi-2"]);
  } finally {
    await lab.ok(["lease", "delete", lease.name, ...asAlice]);
  }
});
