/**
 * Console capture end to end: the demo's simulated board (DutSim) boots during a
 * lease with no client attached to its console; `jmp lease logs` shows the boot log
 * while the lease runs and after it ended. Two `j console pipe` in one lease read
 * identical bytes.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { DEMO_CONFIG } from "../src/cli/demo.ts";
import { Lab } from "./distributed/lab.ts";

const labs: Lab[] = [];
afterAll(async () => {
  await Promise.all(labs.map((l) => l.close()));
}, 30_000);

async function simLab(): Promise<Lab> {
  const lab = await Lab.start();
  labs.push(lab);
  const file = await lab.addExporter("sim-1", { board: "sim" });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.export = (parse(DEMO_CONFIG) as { export: unknown }).export;
  writeFileSync(file, stringify(doc));
  await lab.addClient("alice");
  await lab.runExporter("sim-1");
  return lab;
}

describe("console capture", () => {
  test("the board's boot log, printed with nobody on the console, is shown by jmp lease logs during and after the lease", async () => {
    const lab = await simLab();
    const lease = await lab.createLease("alice", "board=sim");
    // Power only: nothing connects to the console.
    await lab.ok(["shell", "--lease", lease.name, "--client", "alice", "--", "j", "power", "on"]);
    const during = await eventually(async () => {
      const out = await lab.ok(["lease", "logs", lease.name, "--client", "alice", "--driver", "console"]);
      if (!out.includes("login:")) throw new Error(`no login prompt yet in ${JSON.stringify(out.slice(-200))}`);
      return out;
    }, { what: "the boot log to reach the controller", timeout: 15_000, interval: 200 });
    expect(during).toContain("demo-board login:");

    await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
    await lab.doneWith("sim-1", lease.name);
    const after = await lab.ok(["lease", "logs", lease.name, "--client", "alice"]);
    expect(after).toContain(during);
    // -f on an ended lease prints what is kept and returns.
    const followed = await lab.jmp(["lease", "logs", lease.name, "--client", "alice", "-f"], { timeoutMs: 20_000 });
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain("demo-board login:");
    // Another client's lease is not found for bob; an unknown driver is one clear line.
    await lab.addClient("bob");
    const bob = await lab.jmp(["lease", "logs", lease.name, "--client", "bob"]);
    expect(bob.code).toBe(1);
    expect(bob.stderr).toContain("not found");
    const none = await lab.jmp(["lease", "logs", lease.name, "--client", "alice", "--driver", "nosuch"]);
    expect(none.code).toBe(1);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
    expect(none.stderr).toContain("no captured output of driver 'nosuch'");
  }, 90_000);

  test("-f follows the lease until it ends; two console readers in one lease see identical bytes", async () => {
    const lab = await simLab();
    const lease = await lab.createLease("alice", "board=sim");
    const follower = lab.spawn("jmp lease logs -f", ["lease", "logs", lease.name, "--client", "alice", "--driver", "console", "-f"]);
    // Two readers of the console at once, and the board printing while they read.
    const script = [
      "j power on",
      "j console expect 'login:' --timeout 15 >/dev/null",
      "{ j console pipe < /dev/null > a.out 2>/dev/null & j console pipe < /dev/null > b.out 2>/dev/null & sleep 1; }",
      "j console expect '# ' --send 'root\\r' --timeout 10 >/dev/null",
      "j console expect '# ' --send 'uname -a\\r' --timeout 10 >/dev/null",
      "sleep 0.5",
    ].join(" && ");
    const dir = lab.dir.path;
    await lab.ok(["shell", "--lease", lease.name, "--client", "alice", "--", "sh", "-c", `cd ${dir} && ${script}`]);
    const a = readFileSync(`${dir}/a.out`);
    const b = readFileSync(`${dir}/b.out`);
    expect(a.toString()).toContain("Linux demo-board");
    expect(a.length).toBeGreaterThan(50);
    const digest = (x: Buffer) => createHash("sha256").update(x).digest("hex");
    // Each pipe may have started a few bytes apart: compare from the first byte both have.
    expect(Math.abs(a.length - b.length)).toBeLessThan(64);
    const start = Math.max(0, a.length - b.length), startB = Math.max(0, b.length - a.length);
    expect(digest(a.subarray(start))).toBe(digest(b.subarray(startB)));

    await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
    expect(await follower.exited(20_000)).toBe(0);
    expect(follower.output).toContain("demo-board login:");
    expect(follower.output).toContain("Linux demo-board");
  }, 90_000);
});
