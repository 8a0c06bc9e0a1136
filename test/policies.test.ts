/**
 * ExporterAccessPolicies end to end on dist/jmp: `jmp admin policy apply/list/delete`
 * with upstream's YAML, a client no policy admits, maximumDuration capping a lease and
 * refusing a longer extension, a spot lease ended for a non-spot one, and a waiting
 * lease's place in line as `jmp lease get` shows it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { Lab, type LeaseJson } from "./distributed/lab.ts";
import { tempDir } from "./helpers.ts";

const files = tempDir("jmp-policies-");
let lab: Lab;

const POLICY = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterAccessPolicy
metadata:
  name: rpi
spec:
  exporterSelector:
    matchLabels: { board: rpi4 }
  policies:
    - description: admins
      priority: 20
      from: [ { clientSelector: { matchLabels: { role: admin } } } ]
    - description: ci
      priority: 5
      maximumDuration: 1h
      spotAccess: true
      from: [ { clientSelector: { matchLabels: { role: ci } } } ]
`;

const file = (name: string, text: string) => files.file(name, text);

const lease = async (name: string, client: string) =>
  (JSON.parse(await lab.ok(["lease", "get", name, "--client", client, "-o", "json"])) as (LeaseJson & Record<string, unknown>)[])[0]!;

beforeAll(async () => {
  lab = await Lab.start();
  for (const [name, role] of [["boss", "admin"], ["ci", "ci"], ["ci2", "ci"], ["dev", "dev"]]) {
    await lab.admin("create", "client", name!, "-l", `role=${role}`, "--save");
  }
  await lab.addExporter("pi-1", { board: "rpi4" });
  await lab.runExporter("pi-1");
}, 60_000);

afterAll(async () => {
  await lab?.close();
  files.remove();
}, 30_000);

describe("jmp admin policy", () => {
  test("a file with a mistake names the file and the field, exits 2, and applies nothing", async () => {
    const bad = file("bad.yaml", POLICY.replace("priority: 5", "priority: -5"));
    const r = await lab.jmp(["admin", "policy", "apply", "-f", bad, "--data-dir", lab.dataDir]);
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
      code: 2,
      stderr: `Error: ${bad}: spec.policies[1].priority: expected an integer from 0 to 2147483647, got number -5`,
    });
    expect((await lab.admin("policy", "list", "-o", "name")).trim()).toBe("");
  });

  test("apply, then list shows the rules, and -o yaml gives back what applies again", async () => {
    expect((await lab.admin("policy", "apply", "-f", file("rpi.yaml", POLICY))).trim()).toBe("exporteraccesspolicy default/rpi applied");
    const table = await lab.admin("policy", "list");
    expect(table).toContain("board=rpi4");
    expect(table).toContain("role=admin, priority 20; role=ci, priority 5, max 1h, spot");
    const yaml = await lab.admin("policy", "list", "-o", "yaml");
    const docs = parse(yaml) as { kind: string; spec: { policies: { maximumDuration?: string }[] } }[];
    expect(docs.map((d) => d.kind)).toEqual(["ExporterAccessPolicy"]);
    expect(docs[0]!.spec.policies[1]!.maximumDuration).toBe("1h");
    // What `list -o yaml` prints is a List's items; one of them applies as a file of its own.
    expect((await lab.admin("policy", "apply", "-f", file("again.yaml", JSON.stringify(docs[0])))).trim()).toBe("exporteraccesspolicy default/rpi applied");
  });
});

describe("what clients see", () => {
  test("a client no policy admits is refused at once, with the policies in the reason", async () => {
    const r = await lab.jmp(["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client", "dev"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("No access policy admits client dev to exporter pi-1: rpi (admins) admits role=admin; rpi (ci) admits role=ci");
  });

  test("maximumDuration caps the lease, says so, and refuses a longer extension naming the policy", async () => {
    const l = await lab.createLease("ci", "board=rpi4", "3h");
    expect(l.state).toBe("Ready");
    const got = await lease(l.name, "ci");
    expect(got.durationMs).toBe(3_600_000);
    expect(got.message).toContain("its duration is capped at 1h by access policy rpi (ci)");
    expect(got.spotAccess).toBe(true);
    const r = await lab.jmp(["lease", "update", l.name, "--extend", "30m", "--client", "ci"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("access policy rpi (ci) allows leases of at most 1h");
    await lab.ok(["lease", "delete", l.name, "--client", "ci"]);
    await lab.doneWith("pi-1", l.name);
  });

  test("a spot lease gives way to a non-spot one, and its holder sees why; the next waiting lease knows its place", async () => {
    const spot = await lab.createLease("ci", "board=rpi4", "30m");
    expect(spot.state).toBe("Ready");
    // A second CI lease waits behind the first (same priority, same client class).
    const waiting = (JSON.parse(await lab.ok(["lease", "create", "-l", "board=rpi4", "--duration", "30m", "--client", "ci2", "-o", "json"])) as LeaseJson[])[0]!;
    expect(waiting.state).toBe("Pending");
    const before = await lab.ok(["lease", "get", waiting.name, "--client", "ci2"]);
    // The estimate comes from how long earlier leases of this selector lasted (here, under
    // a second each), else from the holder's duration; its figures are the unit tests'.
    expect(before).toMatch(/queue: 1st in line for board=rpi4, (under a minute|about \d+ min)\n/);

    const boss = (JSON.parse(await lab.ok(["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client", "boss", "-o", "json"])) as LeaseJson[])[0]!;
    const ended = await lease(spot.name, "ci");
    expect({ state: ended.state, reason: ended.reason }).toEqual({ state: "Ended", reason: "Preempted" });
    expect(ended.message).toContain("a lease with non-spot access (client boss) needed");
    // The exporter cleans up after the spot lease, then the admin's lease gets it.
    await eventually(async () => expect((await lease(boss.name, "boss")).state).toBe("Ready"), { what: "the admin's lease to be ready", timeout: 20_000 });
    // Priority 20 went before the CI lease that waited longer; it is still first in line.
    expect(await lab.ok(["lease", "get", waiting.name, "--client", "ci2"])).toContain("queue: 1st in line for board=rpi4");
    await lab.ok(["lease", "delete", boss.name, "--client", "boss"]);
    await eventually(async () => expect((await lease(waiting.name, "ci2")).state).toBe("Ready"), { what: "the waiting CI lease to be ready", timeout: 20_000 });
    await lab.ok(["lease", "delete", waiting.name, "--client", "ci2"]);
    await lab.doneWith("pi-1", waiting.name);
  }, 60_000);

  test("without the policy, everyone may lease everything again", async () => {
    expect((await lab.admin("policy", "delete", "rpi")).trim()).toBe("deleted exporteraccesspolicy default/rpi");
    const l = await lab.createLease("dev", "board=rpi4", "10m");
    expect(l.state).toBe("Ready");
    await lab.ok(["lease", "delete", l.name, "--client", "dev"]);
    const r = await lab.jmp(["admin", "policy", "delete", "rpi", "--data-dir", lab.dataDir]);
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 1, stderr: "Error: access policy 'rpi' not found in namespace 'default'" });
  });
});
