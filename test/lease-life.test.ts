/**
 * A lease's life under `jmp shell`, on the built dist/jmp with a real controller
 * and exporter: `--auto-extend` keeps a short lease past its duration (also
 * through a controller restart) and gives it back at the end; without it, the
 * shell warns a minute before the end, names the lease and how to extend it, and
 * closes when the lease expires. The timing itself (5 and 1 minute, refusals) is
 * tested on the fake clock in src/client/lease-watch.test.ts.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { jmp, ROOT, tempDir } from "./helpers.ts";
import type { Lab, LeaseJson } from "./distributed/lab.ts";
import { labsPerTest } from "./distributed/labs-per-test.ts";

const labs = labsPerTest();
const lab = () => labs.onePi();

const noStackTrace = (stderr: string) => expect(stderr).not.toMatch(/^\s+at .*[:(]/m);

type LeaseDetail = LeaseJson & { durationMs: number };

async function leaseDetail(l: Lab, name: string): Promise<LeaseDetail> {
  return (JSON.parse(await l.ok(["lease", "get", name, "--client", "alice", "-o", "json"])) as LeaseDetail[])[0]!;
}

test("--auto-extend keeps a 5 s lease through a 12 s command, then releases it", async () => {
  const l = await lab();
  // The command checks, at its end, that the lease still serves it: `j` dials through it.
  const shell = l.spawn("alice's jmp shell", [
    "shell", "-l", "board=rpi4", "--duration", "5s", "--auto-extend", "--client", "alice", "--", "sh", "-c", "sleep 12 && j power on",
  ]);
  expect(await shell.exited(40_000)).toBe(0);
  const name = /lease (\S+): ready on exporter pi-1/.exec(shell.output)![1]!;
  expect(shell.output).toContain(`released lease ${name}`);
  expect(shell.output).not.toContain("closing the shell");
  expect(shell.output).not.toContain("Warning");
  noStackTrace(shell.output);
  const v = await leaseDetail(l, name);
  expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
  // Extended in 5 s steps: at least twice to outlive a 12 s command.
  expect(v.durationMs).toBeGreaterThanOrEqual(15_000);
  expect(v.durationMs % 5_000).toBe(0);
}, 60_000);

test("--auto-extend waits through a controller restart when an extension is due; the shell runs to its end", async () => {
  const l = await lab();
  // At debug level the shell says when an extension could not reach the controller.
  const shell = l.spawn("alice's jmp shell", [
    "shell", "-l", "board=rpi4", "--duration", "10s", "--auto-extend", "--client", "alice", "--log-level", "debug", "--", "sh", "-c", "echo command started; sleep 20",
  ]);
  const at = await shell.waitLine("command started", { timeoutMs: 20_000 });
  const name = /lease (\S+): ready on exporter pi-1/.exec(shell.output)![1]!;
  // Down when the first extension is due (5 s before the end), and back once it has failed.
  l.controller.signal("SIGTERM");
  await l.controller.exited();
  const failed = await shell.waitLine(new RegExp(`extending lease ${name}: cannot reach the controller.*; trying again`), { from: at, timeoutMs: 15_000 });
  await l.startController();
  await shell.waitLine(new RegExp(`extended lease ${name} to 20s`), { from: failed, timeoutMs: 15_000 });
  expect(await shell.exited(40_000)).toBe(0);
  expect(shell.output).toContain(`released lease ${name}`);
  expect(shell.output).not.toContain("closing the shell");
  noStackTrace(shell.output);
  const v = await leaseDetail(l, name);
  expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
  expect(v.durationMs).toBeGreaterThanOrEqual(30_000);
}, 60_000);

test("without --auto-extend the shell warns a minute before the lease ends, with how to extend it, and closes when it expires", async () => {
  const l = await lab();
  const shell = l.spawn("alice's jmp shell", ["shell", "-l", "board=rpi4", "--duration", "65s", "--client", "alice", "--", "sleep", "120"]);
  const ready = await shell.waitLine(/lease \S+: ready on exporter pi-1/, { timeoutMs: 20_000 });
  const name = /lease (\S+): ready/.exec(shell.lines[ready]!.text)![1]!;
  const at = await shell.waitLine("Warning: lease", { from: ready, timeoutMs: 20_000 });
  expect(shell.lines[at]!.text).toMatch(
    new RegExp(`^Warning: lease ${name} ends in 1m \\(at \\d\\d:\\d\\d:\\d\\d\\); to keep it: jmp lease update ${name} --extend 1m5s$`),
  );
  // No 5-minute warning for a lease that never had 5 minutes.
  expect(shell.count("ends in")).toBe(1);
  // Cut short by hand so the test need not wait the minute: the shell closes when it ends.
  await l.ok(["lease", "update", name, "--duration", "15s", "--client", "alice"]);
  expect(await shell.exited(30_000)).toBe(129);
  expect(shell.output).toContain(`lease ${name} ended (Expired); closing the shell`);
  noStackTrace(shell.output);
  expect((await leaseDetail(l, name)).reason).toBe("Expired");
}, 60_000);

test("--auto-extend under an access policy's maximumDuration: the refusal is said once, the lease ends at its maximum", async () => {
  const l = await labs.start();
  await l.addExporter("pi-1", { board: "rpi4" });
  await l.admin("create", "client", "alice", "-l", "role=dev", "--save");
  await l.runExporter("pi-1");
  const files = tempDir();
  try {
    const policy = files.file("short.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterAccessPolicy
metadata:
  name: short
spec:
  exporterSelector:
    matchLabels: { board: rpi4 }
  policies:
    - priority: 1
      maximumDuration: 12s
      from: [ { clientSelector: { matchLabels: { role: dev } } } ]
`);
    await l.admin("policy", "apply", "-f", policy);
  } finally {
    files.remove();
  }
  // 5 s, extended to 10 s at 2.5 s; 15 s is refused at 7.5 s; the lease ends at 10 s.
  const r = await l.jmp(["shell", "-l", "board=rpi4", "--duration", "5s", "--auto-extend", "--client", "alice", "--", "sleep", "30"], { timeoutMs: 40_000 });
  expect(r.code).toBe(129);
  const name = /lease (\S+): ready on exporter pi-1/.exec(r.stderr)![1]!;
  expect(r.stderr.match(/cannot extend/g)).toHaveLength(1);
  // The controller's reason, which names the policy and its maximum, then when the lease ends.
  const said = r.stderr.split("\n").find((line) => line.includes("cannot extend"))!;
  expect(said).toMatch(new RegExp(`^Warning: cannot extend lease ${name}: .+; it ends in \\d+s \\(at \\d\\d:\\d\\d:\\d\\d\\); no longer extending it$`));
  expect(said).toContain("short");
  expect(said).toContain("12s");
  expect(r.stderr).toContain(`lease ${name} ended (Expired); closing the shell`);
  noStackTrace(r.stderr);
  expect((await leaseDetail(l, name)).durationMs).toBe(10_000);
}, 60_000);

/** Runs test/fixtures/lease-life.ts in `mode` with the lab's client config; resolves to its exit code and output. */
async function script(l: Lab, mode: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures/lease-life.ts"), mode], {
    cwd: ROOT, env: { ...process.env, ...l.env, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: out + err };
}

test("lease({ autoExtend: true }) keeps a 5 s lease for a 12 s job; close() gives it back", async () => {
  const l = await lab();
  const r = await script(l, "auto");
  expect({ code: r.code, done: /DONE \S+/.test(r.out) }).toEqual({ code: 0, done: true });
  expect(r.out).not.toContain("WARN");
  const v = await leaseDetail(l, /DONE (\S+)/.exec(r.out)![1]!);
  expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
  expect(v.durationMs).toBeGreaterThanOrEqual(15_000);
}, 60_000);

test("lease({ onEnding }) is told a minute before the lease ends", async () => {
  const l = await lab();
  const r = await script(l, "ending");
  expect(r.code).toBe(0);
  const ms = Number(/ENDING (\d+)/.exec(r.out)?.[1]);
  // Told at the threshold (the timer fires a few ms late at most), and only once it was crossed.
  expect(ms).toBeLessThanOrEqual(60_000);
  expect(ms).toBeGreaterThan(59_000);
  const v = await leaseDetail(l, /LEASED (\S+)/.exec(r.out)![1]!);
  expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
}, 60_000);

test("--auto-extend with a local or direct session is a usage error naming the flag", async () => {
  const dir = tempDir();
  try {
    for (const mode of [["--exporter-config", dir.file("e.yaml", "export: {}\n")], ["--tls-grpc", "127.0.0.1:1"]]) {
      const r = await jmp(["shell", ...mode, "--auto-extend", "--", "true"]);
      expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
        code: 2,
        stderr: "Error: --auto-extend extends a lease: it goes with -l, -n or --lease (through a controller), not with a local or direct session",
      });
    }
  } finally {
    dir.remove();
  }
});
