/**
 * The daemons run without JSC's top JIT tier (src/common/jit-tier.ts), as users
 * start them: the controller execs itself again with the option set, keeping its
 * process id and arguments; an exporter's supervisor starts its worker so; a user's
 * own setting is left as given; and what the worker runs (a shell driver's command)
 * does not inherit the option.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { eventually } from "../src/api/eventually.ts";
import { freePort, jmp, JMP, tcpAccepts, tempDir, whileRunning } from "./helpers.ts";

const dir = tempDir("jmp-jit-tier-");
const running: Subprocess[] = [];

afterAll(async () => {
  for (const p of running) p.kill("SIGTERM");
  await Promise.all(running.map((p) => p.exited));
  dir.remove();
});

/** Starts `jmp ARGS` and waits until it accepts connections on `port`. */
async function daemon(args: string[], port: number, env: Record<string, string> = {}): Promise<Subprocess> {
  let err = "";
  const proc = Bun.spawn([JMP, ...args], { stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", ...env } });
  running.push(proc);
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  await eventually(() => tcpAccepts(port), { what: `jmp ${args[0]} to listen on ${port}`, interval: 20, signal: whileRunning(proc, `jmp ${args[0]}`, () => err) });
  return proc;
}

const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
const jitEntries = (pid: number) => environ(pid).filter((e) => /^(BUN_JSC_useFTLJIT|JMP_JIT_TIER_SET)=/.test(e));

/** The first child of `pid` (a supervisor's worker), as the kernel lists it. */
const firstChild = (pid: number) => Number(readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]);

test("the controller runs without the top tier: the same process, the same arguments", async () => {
  const port = await freePort();
  const args = ["controller", "run", "--data-dir", `${dir.path}/controller`, "--listen", `127.0.0.1:${port}`];
  const proc = await daemon(args, port);
  // The process we started is the one serving: execve kept its id.
  expect(jitEntries(proc.pid!)).toEqual(["BUN_JSC_useFTLJIT=0", "JMP_JIT_TIER_SET=1"]);
  expect(cmdline(proc.pid!).slice(1)).toEqual(args);
});

test("a user's own setting is left as given", async () => {
  const port = await freePort();
  const proc = await daemon(["controller", "run", "--data-dir", `${dir.path}/controller-own`, "--listen", `127.0.0.1:${port}`], port, { BUN_JSC_useFTLJIT: "1" });
  expect(jitEntries(proc.pid!)).toEqual(["BUN_JSC_useFTLJIT=1"]);
});

test("an exporter's worker is started so, and what it runs does not inherit the option", async () => {
  const config = dir.file("exporter.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: { namespace: default, name: jit }
export:
  shell:
    type: jumpstarter_driver_shell.driver.Shell
    config:
      methods:
        environment: 'env'
`);
  const port = await freePort();
  const supervisor = await daemon(["run", "--exporter-config", config, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"], port);
  // The supervisor stays as it was started; it only starts workers.
  expect(jitEntries(supervisor.pid!)).toEqual([]);
  const worker = firstChild(supervisor.pid!);
  expect(worker).toBeGreaterThan(0);
  expect(jitEntries(worker)).toEqual(["BUN_JSC_useFTLJIT=0", "JMP_JIT_TIER_SET=1"]);
  const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--tls-grpc-insecure", "--", "j", "shell", "environment"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("PATH=");
  expect(r.stdout).not.toMatch(/BUN_JSC_useFTLJIT|JMP_JIT_TIER_SET/);
});
