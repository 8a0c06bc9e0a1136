/**
 * The audit log end to end on dist/jmp: a lab's admin actions, every step of its
 * leases (an expiry and a revocation with their reasons) and a refused token, read
 * back with `jmp admin audit` and its filters, and still there after the controller
 * restarts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { eventually } from "../src/api/eventually.ts";
import type { AuditView } from "../src/client/admin-client.ts";
import { Lab } from "./distributed/lab.ts";

let lab: Lab;
const startedAt = new Date();

beforeAll(async () => {
  lab = await Lab.start();
  await lab.addClient("alice");
  await lab.addClient("bob");
  await lab.addClient("carol");
  await lab.addExporter("pi-1", { board: "rpi4" });
  await lab.addExporter("pi-2", { board: "rpi3" });
  await Promise.all([lab.runExporter("pi-1"), lab.runExporter("pi-2")]);
}, 30_000);

afterAll(async () => {
  await lab?.close();
}, 30_000);

const audit = async (...args: string[]): Promise<AuditView[]> => JSON.parse(await lab.admin("audit", "-o", "json", ...args)) as AuditView[];

test("a lease's life, an expiry and a revocation with their reasons, admin actions and a refused token are recorded with who, when and why", async () => {
  // Expiry: alice's short lease runs out.
  const short = await lab.createLease("alice", "board=rpi4", "2s");
  await eventually(async () => expect((await lab.lease(short.name, "alice")).state).toBe("Ended"), { what: "the 2 s lease to expire", timeout: 15_000 });
  await lab.doneWith("pi-1", short.name);

  // Extension, then a release by its client.
  const extended = await lab.createLease("alice", "board=rpi4", "10m");
  await lab.ok(["lease", "update", extended.name, "--duration", "20m", "--client", "alice"]);
  await lab.ok(["lease", "delete", extended.name, "--client", "alice"]);

  // Revocation: bob holds pi-2 when the admin deletes it.
  const revoked = await lab.createLease("bob", "board=rpi3", "10m");
  expect(revoked.state).toBe("Ready");
  await lab.admin("exporter", "disable", "pi-1", "--reason", "new SD card");
  await lab.admin("delete", "exporter", "pi-2");

  // A refused token: carol is deleted, her saved config still holds her old token.
  await lab.admin("delete", "client", "carol");
  const refused = await lab.jmp(["lease", "list", "--client", "carol"]);
  expect(refused.code).not.toBe(0);

  const all = await audit();
  const find = (action: string, lease?: string) => all.find((e) => e.action === action && (lease === undefined || e.lease === lease));

  expect(find("lease.create", short.name)).toMatchObject({ actor: "client/alice", client: "alice", detail: "selector 'board=rpi4' for 2s" });
  expect(find("lease.acquire", short.name)).toMatchObject({ actor: "controller", client: "alice", exporter: "pi-1" });
  expect(find("lease.expire", short.name)).toMatchObject({
    actor: "controller", client: "alice", exporter: "pi-1", reason: "Expired", detail: "The lease has expired",
  });
  expect(find("lease.extend", extended.name)).toMatchObject({ actor: "client/alice", exporter: "pi-1" });
  expect(find("lease.extend", extended.name)!.detail).toMatch(/^ends at .* \(was .*, \+10m\)$/);
  expect(find("lease.release", extended.name)).toMatchObject({ actor: "client/alice", reason: "Released", detail: "The lease was released" });
  expect(find("lease.revoke", revoked.name)).toMatchObject({
    actor: "admin/admin", client: "bob", exporter: "pi-2", reason: "ExporterDeleted", detail: "Exporter pi-2 was deleted",
  });
  expect(find("exporter.disable")).toMatchObject({ actor: "admin/admin", exporter: "pi-1", detail: "new SD card" });
  expect(find("exporter.delete")).toMatchObject({ actor: "admin/admin", exporter: "pi-2" });
  expect(find("client.create")).toMatchObject({ actor: "admin/admin", client: "alice" });
  expect(find("client.delete")).toMatchObject({ actor: "admin/admin", client: "carol" });
  const carol = all.find((e) => e.action === "token.refuse" && e.client === "carol");
  expect(carol).toMatchObject({ actor: "client/carol", reason: "revoked" });
  expect(carol!.detail).toContain("ListLeases: the client 'carol' was deleted or its token was rotated");
  // The deleted exporter's process, still running, is refused too.
  expect(all.find((e) => e.action === "token.refuse" && e.exporter === "pi-2")).toMatchObject({ actor: "exporter/pi-2", reason: "revoked" });

  // Each has a time within this test, in order.
  const times = all.map((e) => Date.parse(e.time));
  expect(times.every((t, i) => t >= startedAt.getTime() - 1000 && (i === 0 || t >= times[i - 1]!))).toBe(true);
}, 60_000);

test("filters: --client, --exporter, --lease, --since, --limit; a table by default; bad flags say what they expect", async () => {
  const alices = await audit("--client", "alice");
  expect(alices.length).toBeGreaterThan(0);
  expect(alices.every((e) => e.client === "alice" || e.actor === "client/alice")).toBe(true);
  const pi2 = await audit("--exporter", "pi-2");
  expect(pi2.map((e) => e.action)).toEqual(expect.arrayContaining(["exporter.create", "lease.acquire", "lease.revoke", "exporter.delete"]));
  expect(pi2.every((e) => e.exporter === "pi-2")).toBe(true);
  const one = pi2.find((e) => e.lease)!.lease!;
  expect((await audit("--lease", one)).map((e) => e.action)).toEqual(["lease.create", "lease.acquire", "lease.revoke"]);
  expect(await audit("--since", "2099-01-01")).toEqual([]);
  expect((await audit("--since", "1h")).length).toBe((await audit()).length);
  const newest = await audit("--limit", "2");
  expect(newest).toEqual((await audit()).slice(-2));

  const table = await lab.admin("audit", "--exporter", "pi-2");
  expect(table.split("\n")[0]).toMatch(/^TIME\s+ACTION\s+ACTOR\s+LEASE\s+CLIENT\s+EXPORTER\s+REASON\s+DETAIL$/);
  expect(table).toMatch(/lease\.revoke\s+admin\/admin\s+\S+\s+bob\s+pi-2\s+ExporterDeleted\s+Exporter pi-2 was deleted/);

  for (const [args, message] of [
    [["--since", "yesterday"], "'--since' must be a duration back from now (30m, 1h, 7d) or a time (2026-12-01T08:00:00Z): got 'yesterday'"],
    [["--limit", "0"], "'--limit' must be a whole number from 1 to 10000: got '0'"],
    [["-o", "name"], "'-o' must be one of table, json, yaml: got 'name'"],
  ] as const) {
    const r = await lab.jmp(["admin", "audit", ...args, "--data-dir", lab.dataDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  }
});

test("the controller's retention flags: a duration longer than zero, a whole number of at least 1", async () => {
  for (const [args, message] of [
    [["--audit-keep", "0"], "'--audit-keep' must be longer than zero: got '0'"],
    [["--audit-keep", "a month"], "'--audit-keep' must be a duration such as 90s, 30m, 1h30m, 1d, PT1H or 01:30:00: got 'a month'"],
    [["--audit-max-entries", "0"], "'--audit-max-entries' must be a whole number of at least 1: got '0'"],
  ] as const) {
    const r = await lab.jmp(["controller", "run", "--data-dir", `${lab.dataDir}-unused`, "--listen", "127.0.0.1:0", ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  }
});

test("the log is kept in the store: a restarted controller shows the same entries", async () => {
  const before = await audit();
  await lab.controller.stop();
  await lab.startController();
  const after = await audit();
  expect(after.slice(0, before.length)).toEqual(before);
}, 30_000);
