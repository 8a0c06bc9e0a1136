/**
 * Controller restarts as `npm run chaos` found them to hurt, on dist/jmp: an
 * exporter that came back long after the controller did, a shell whose next `j`
 * failed because the controller was away for a moment, and a lease in use whose
 * release was lost to a restart. Each test failed before its fix.
 */
import { expect, test } from "bun:test";
import type { Lab } from "../distributed/lab.ts";
import { labsPerTest } from "../distributed/labs-per-test.ts";

const labs = labsPerTest();
const lab = () => labs.onePi();

/** Stops the controller with `signal`, keeps it away for `awayMs` (the outage under test), and starts it again. */
async function restart(l: Lab, signal: NodeJS.Signals, awayMs: number): Promise<number> {
  l.controller.signal(signal);
  await l.controller.exited();
  await Bun.sleep(awayMs);
  await l.startController();
  return performance.now();
}

test("an exporter registers again within 5 s of the controller's return after an 18.5 s outage (its retries were up to 30 s apart)", async () => {
  const l = await lab();
  const exporter = l.exporters.get("pi-1")!;
  const mark = exporter.lines.length;
  // Retries that doubled up to 30 s fell at about 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s
  // (each ±20%): a controller back at ~19 s waited for the one at 25–38 s.
  const back = await restart(l, "SIGKILL", 18_500);
  // The exporter's own line gives the figure its time: online alone would not do (a
  // restarted controller counts an exporter seen within a minute as online).
  const at = exporter.lines[await exporter.waitLine("registered as default/pi-1", { from: mark, timeoutMs: 30_000 })]!.at;
  console.log(`exporter registered ${Math.round(at - back)} ms after the controller came back from an 18.5 s outage`);
  expect(at - back).toBeLessThan(5_000);
}, 60_000);

test("a shell's next j call waits through a controller restart instead of failing (SIGKILL, controller away 3 s)", async () => {
  const l = await lab();
  const shell = l.spawn("alice's jmp shell", ["shell", "-l", "board=rpi4", "--client", "alice", "--", "sh", "-c", "j power on && echo first-call-done && sleep 1 && j power on && echo second-call-done"]);
  // The shell's own output is the subject: the moment between its two calls.
  await shell.waitLine("first-call-done", { timeoutMs: 30_000 });
  await restart(l, "SIGKILL", 3_000);
  expect(await shell.exited(60_000)).toBe(0);
  expect(shell.output).toContain("second-call-done");
}, 90_000);

test("a shell that ends while the controller is away releases its lease once the controller is back (it was kept until its expiry)", async () => {
  const l = await lab();
  const shell = l.spawn("alice's jmp shell", ["shell", "-l", "board=rpi4", "--client", "alice", "--", "sh", "-c", "j power on && echo used && sleep 1"]);
  const at = await shell.waitLine("used", { timeoutMs: 30_000 });
  const lease = /lease (\S+): ready on exporter/.exec(shell.output)![1]!;
  l.controller.signal("SIGKILL");
  await l.controller.exited();
  // The shell's command ends and its release fails meanwhile; then the controller returns.
  await shell.waitLine(`releasing lease ${lease}`, { from: at, timeoutMs: 15_000 });
  await l.startController();
  expect(await shell.exited(45_000)).toBe(0);
  expect(shell.output).toContain(`released lease ${lease}`);
  const v = await l.lease(lease, "alice");
  expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
}, 90_000);

test("a shell started while the controller is restarting waits for it, says so, and creates exactly one lease", async () => {
  const l = await lab();
  l.controller.signal("SIGKILL");
  await l.controller.exited();
  const shell = l.spawn("alice's jmp shell", ["shell", "-l", "board=rpi4", "--client", "alice", "--", "j", "power", "on"]);
  // It used to fail at once with the refused connection.
  await shell.waitLine(/creating the lease: .*still trying/, { timeoutMs: 15_000 });
  await Bun.sleep(2_000);
  await l.startController();
  expect(await shell.exited(45_000)).toBe(0);
  const lease = /lease (\S+): ready on exporter pi-1/.exec(shell.output)![1]!;
  expect(shell.output).toContain(`released lease ${lease}`);
  // One try got through: no second lease queued behind the first.
  const all = JSON.parse(await l.ok(["lease", "list", "-a", "--client", "alice", "-o", "json"])) as { name: string; state: string }[];
  const mine = all.map((x) => ({ name: x.name, state: x.state }));
  expect(mine).toEqual([{ name: lease, state: "Ended" }]);
}, 90_000);

test("jmp lease create started while the controller is restarting waits for it, says so once, and creates exactly one lease", async () => {
  const l = await lab();
  l.controller.signal("SIGKILL");
  await l.controller.exited();
  const create = l.spawn("alice's jmp lease create", ["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client", "alice", "-o", "json"]);
  // It used to fail at once with the refused connection, and a lease whose answer a
  // restart lost stayed, held by nobody, for its whole duration.
  await create.waitLine(/creating the lease: .*still trying/, { timeoutMs: 15_000 });
  await Bun.sleep(2_000);
  await l.startController();
  expect(await create.exited(45_000)).toBe(0);
  expect(create.output.split("\n").filter((x) => x.includes("still trying"))).toHaveLength(1);
  const made = JSON.parse(create.output.slice(create.output.search(/^\[/m))) as { name: string }[];
  const all = JSON.parse(await l.ok(["lease", "list", "-a", "--client", "alice", "-o", "json"])) as { name: string }[];
  expect(all.map((x) => x.name)).toEqual([made[0]!.name]);
}, 90_000);
