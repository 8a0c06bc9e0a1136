/**
 * Lease hooks in distributed mode on dist/jmp, every case of upstream's e2e hooks
 * lane (e2e/test/hooks_test.go) written as our own: one controller, one exporter per
 * hook config (label case=NAME), and `jmp shell -l case=NAME -- j power on` as the
 * lane runs it. Exporters whose hook stops them (`onFailure: exit`) run without
 * restarts and are expected to exit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { Lab } from "./distributed/lab.ts";
import { jmp, tempDir } from "./helpers.ts";

const files = tempDir("jmp-hooks-e2e-");
const pyHook = files.file("prepare_device.py", `import os, subprocess
print(f"PYTHON_HOOK: lease={os.environ.get('LEASE_NAME', 'unknown')}")
subprocess.run(["j", "power", "on"], check=True)
print("PYTHON_HOOK: driver API works")
print("PYTHON_HOOK: complete")
`);
const shHook = files.file("prepare.sh", '#!/bin/sh\necho "SCRIPTFILE_HOOK: executed from file"\necho "SCRIPTFILE_HOOK: complete"\n');

/** Each exporter's hooks (upstream's e2e/exporters/exporter-hooks-*.yaml, in our words where the lane has none). */
const CASES: Record<string, Record<string, unknown>> = {
  "before-only": { beforeLease: { script: 'echo "BEFORE_HOOK_MARKER: executed"\n', timeout: 60 } },
  "after-only": { afterLease: { script: 'echo "AFTER_HOOK_MARKER: executed"\n', timeout: 60 } },
  both: {
    beforeLease: { script: 'echo "BEFORE_HOOK: lease=$LEASE_NAME client=$CLIENT_NAME"\nj power on\necho "BEFORE_HOOK: complete"\n' },
    afterLease: { script: 'echo "AFTER_HOOK: cleaning up"\nj power off\necho "AFTER_HOOK: complete"\n' },
  },
  "before-warn": { beforeLease: { script: 'echo "HOOK_FAIL_WARN: will fail but continue"\nexit 1\n', onFailure: "warn" } },
  "before-endlease": {
    beforeLease: { script: 'echo "HOOK_FAIL_ENDLEASE: will fail and end lease"\nexit 1\n', onFailure: "endLease" },
    afterLease: { script: 'echo "AFTER_SHOULD_NOT_RUN: this proves afterLease was skipped"\n' },
  },
  "before-exit": {
    beforeLease: { script: 'echo "HOOK_FAIL_EXIT: shutting down"\nexit 1\n', onFailure: "exit" },
    afterLease: { script: 'echo "AFTER_SHOULD_NOT_RUN: this proves afterLease was skipped"\n' },
  },
  "after-warn": { afterLease: { script: 'echo "HOOK_FAIL_WARN: afterLease failed but continuing"\nexit 1\n', onFailure: "warn" } },
  "after-endlease": { afterLease: { script: 'echo "HOOK_FAIL_ENDLEASE: afterLease failed"\nexit 4\n', onFailure: "endLease" } },
  "after-exit": { afterLease: { script: 'echo "HOOK_FAIL_EXIT: afterLease failed, shutting down"\nexit 1\n', onFailure: "exit" } },
  timeout: { beforeLease: { script: 'echo "HOOK_TIMEOUT: starting"\nsleep 3600\n', timeout: 2, onFailure: "warn" } },
  "exec-bash": { beforeLease: { exec: "/bin/bash", script: '[[ -n "$LEASE_NAME" ]] && echo "BASH_HOOK: lease=$LEASE_NAME"\necho "BASH_HOOK: complete"\n' } },
  "exec-python": { beforeLease: { script: pyHook } },
  "exec-script-file": { beforeLease: { script: shHook } },
  "slow-before": {
    beforeLease: { script: 'echo "SLOW_BEFORE_HOOK: starting"\nsleep 3\necho "SLOW_BEFORE_HOOK: complete"\n' },
    afterLease: { script: 'echo "AFTER_HOOK: executed"\n' },
  },
  motd: { beforeLease: { script: 'echo "Board flashed with build 42" > "$JMP_MOTD_FILE"\n' } },
  "exit-on-lease-end": { afterLease: { script: 'echo "AFTER_HOOK: before the exit"\n' } },
};
/** Started with --exit-on-lease-end, or stopped by their hook: no restart expected. */
const SINGLE = new Set(["before-exit", "after-exit", "exit-on-lease-end"]);

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.start();
  await lab.addClient("alice");
  for (const [name, hooks] of Object.entries(CASES)) {
    const file = await lab.addExporter(name, { board: "hooks", case: name });
    const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(file, stringify({ ...doc, motd: name === "motd" ? "Welcome to the bench" : undefined, hooks }));
  }
  await Promise.all(Object.keys(CASES).map((name) => (name === "exit-on-lease-end"
    ? runExporter(name, ["--exit-on-lease-end"])
    : lab.runExporter(name))));
}, 60_000);

afterAll(async () => {
  await lab?.close();
  files.remove();
}, 30_000);

/** `jmp run --exporter NAME ARGS…`, once the controller has it online. */
async function runExporter(name: string, args: string[]) {
  const p = lab.spawn(`exporter ${name}`, ["run", "--exporter", name, ...args]);
  lab.exporters.set(name, p);
  await lab.exporterUntil(name, (e) => e.online && e.status === "AVAILABLE", "to register");
  return p;
}

/** As the lane runs it: a shell on the case's exporter running `j power on`; stdout and stderr together. */
async function shell(name: string, ...extra: string[]) {
  const r = await lab.jmp(["shell", "-l", `case=${name}`, "--client", "alice", ...extra, "--", "j", "power", "on"], { timeoutMs: 40_000 });
  return { code: r.code, out: r.stderr + r.stdout };
}

const available = (name: string) => lab.exporterUntil(name, (e) => e.online && e.status === "AVAILABLE" && e.lease === "", "to be available again");
const noStackTrace = (out: string) => expect(out).not.toMatch(/^\s+at .*[:(]/m);

describe("A: hooks run", () => {
  test("A1, H1: beforeLease runs before the client's command, and the client sees its output and none of the exporter's own", async () => {
    const r = await shell("before-only");
    expect(r.code).toBe(0);
    expect(r.out).toContain("beforeLease: BEFORE_HOOK_MARKER: executed");
    for (const internal of ["Starting hook subprocess", "Creating PTY", "Hook executed successfully", "Running beforeLease hook"]) {
      expect(r.out).not.toContain(internal);
    }
  });

  test("A2: afterLease runs when the client's session ends, and the client sees its output before it exits", async () => {
    const r = await shell("after-only");
    expect(r.code).toBe(0);
    expect(r.out).toContain("afterLease: AFTER_HOOK_MARKER: executed");
    await available("after-only");
  });

  test("A3, E1-E3: both hooks in order, `j` works inside them, LEASE_NAME and CLIENT_NAME are set", async () => {
    const r = await shell("both");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/BEFORE_HOOK: lease=[0-9a-f-]{36} client=alice/);
    expect(r.out).toContain("BEFORE_HOOK: complete");
    expect(r.out).toContain("AFTER_HOOK: complete");
    expect(r.out.indexOf("BEFORE_HOOK:")).toBeLessThan(r.out.indexOf("AFTER_HOOK:"));
    // The exporter's log has the same lines, from the hook itself.
    expect(lab.exporters.get("both")!.output).toContain("afterLease: AFTER_HOOK: complete");
  });

  test("--exporter-logs adds the drivers' log lines, here the power switch's from the hooks' j and the client's", async () => {
    const r = await shell("both", "--exporter-logs");
    expect(r.code).toBe(0);
    expect(r.out.match(/^INFO power: power on$/gm)).toHaveLength(2);
    expect(r.out).toContain("INFO power: power off");
  });
});

describe("B: beforeLease failures", () => {
  test("B1, H3: onFailure warn: the shell goes on, with a warning", async () => {
    const r = await shell("before-warn");
    expect(r.code).toBe(0);
    expect(r.out).toContain("HOOK_FAIL_WARN: will fail but continue");
    expect(r.out).toContain('Warning: beforeLease hook warning: exit code 1; last output: "HOOK_FAIL_WARN: will fail but continue"');
    await available("before-warn");
  });

  test("B2, B3, B4: onFailure endLease: the shell fails saying why, afterLease is skipped, the exporter takes the next lease", async () => {
    for (let round = 1; round <= 2; round++) {
      const r = await shell("before-endlease");
      expect(r.code).toBe(1);
      expect(r.out).toContain("beforeLease: HOOK_FAIL_ENDLEASE: will fail and end lease");
      expect(r.out).toContain("Error: exporter before-endlease: beforeLease hook failed (onFailure: endLease): exit code 1");
      expect(r.out).not.toContain("AFTER_SHOULD_NOT_RUN");
      noStackTrace(r.out);
      await available("before-endlease");
    }
    expect(lab.exporters.get("before-endlease")!.output).not.toContain("AFTER_SHOULD_NOT_RUN");
  });

  test("B5, H2: onFailure exit: the shell fails, afterLease is skipped, the exporter exits 1 and shows offline", async () => {
    const exporter = lab.exporters.get("before-exit")!;
    const r = await shell("before-exit");
    expect(r.code).toBe(1);
    expect(r.out).toContain("beforeLease hook failed (onFailure: exit)");
    expect(r.out).not.toContain("AFTER_SHOULD_NOT_RUN");
    expect(await exporter.exited()).toBe(1);
    expect(exporter.output).not.toContain("AFTER_SHOULD_NOT_RUN");
    await lab.exporterUntil("before-exit", (e) => !e.online && e.status === "OFFLINE", "to show offline", 20_000);
  });
});

describe("C: afterLease failures", () => {
  test("C1, H4: onFailure warn: the shell succeeds, with a warning; the exporter stays available", async () => {
    const r = await shell("after-warn");
    expect(r.code).toBe(0);
    expect(r.out).toContain("afterLease: HOOK_FAIL_WARN: afterLease failed but continuing");
    expect(r.out).toContain("Warning: afterLease hook warning: exit code 1");
    await available("after-warn");
  });

  test("onFailure endLease: the client is told cleanup failed (exit 1); the exporter takes new leases", async () => {
    const r = await shell("after-endlease");
    expect(r.out).toContain("Error: exporter after-endlease: afterLease hook failed (onFailure: endLease): exit code 4");
    expect(r.code).toBe(1);
    await available("after-endlease");
    expect((await shell("after-endlease")).out).toContain("HOOK_FAIL_ENDLEASE: afterLease failed");
  });

  test("C2: onFailure exit: the exporter exits 1 and shows offline", async () => {
    const exporter = lab.exporters.get("after-exit")!;
    const r = await shell("after-exit");
    expect(r.out).toContain("afterLease: HOOK_FAIL_EXIT: afterLease failed, shutting down");
    expect(await exporter.exited()).toBe(1);
    await lab.exporterUntil("after-exit", (e) => !e.online, "to show offline", 20_000);
  });
});

test("D1: a beforeLease hook past its timeout is a failure (here: warn), and the shell goes on", async () => {
  const t0 = performance.now();
  const r = await shell("timeout");
  expect(r.code).toBe(0);
  expect(r.out).toContain("beforeLease: HOOK_TIMEOUT: starting");
  expect(r.out).toContain("Warning: beforeLease hook warning: timed out after 2 s (its process group was ended)");
  expect(performance.now() - t0).toBeLessThan(15_000);
});

describe("F: interpreters", () => {
  test("F1: exec /bin/bash runs bash syntax", async () => {
    const r = await shell("exec-bash");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/BASH_HOOK: lease=[0-9a-f-]{36}/);
    expect(r.out).toContain("BASH_HOOK: complete");
  });

  test("F2: a .py script file runs with python3, and drives the exporter with j", async () => {
    const r = await shell("exec-python");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/PYTHON_HOOK: lease=[0-9a-f-]{36}/);
    expect(r.out).toContain("PYTHON_HOOK: driver API works");
    expect(r.out).toContain("PYTHON_HOOK: complete");
  });

  test("F3: a script named by its path runs from its file", async () => {
    const r = await shell("exec-script-file");
    expect(r.code).toBe(0);
    expect(r.out).toContain("SCRIPTFILE_HOOK: complete");
  });
});

describe("G: a slow beforeLease", () => {
  test("the client waits, saying a hook runs, and shows its output as it comes", async () => {
    const r = await shell("slow-before");
    expect(r.code).toBe(0);
    expect(r.out).toContain("waiting for the exporter: exporter slow-before is running its beforeLease hook");
    expect(r.out.indexOf("SLOW_BEFORE_HOOK: starting")).toBeLessThan(r.out.indexOf("SLOW_BEFORE_HOOK: complete"));
    expect(r.out).toContain("afterLease: AFTER_HOOK: executed");
  });

  test("G2: a lease that expires while the hook runs ends the shell with one line, and the exporter comes back", async () => {
    await available("slow-before");
    const t0 = performance.now();
    const r = await lab.jmp(["shell", "-l", "case=slow-before", "--client", "alice", "--duration", "2s", "--", "sleep", "30"], { timeoutMs: 30_000 });
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: .*(expired|ended)/m);
    noStackTrace(r.stderr);
    // The hook ran to its end, then the afterLease one, as upstream.
    await available("slow-before");
    await eventually(() => expect(lab.exporters.get("slow-before")!.count("afterLease: AFTER_HOOK: executed")).toBe(2), { what: "the second afterLease hook" });
  });
});

test("JMP_MOTD_FILE: what beforeLease writes there joins the MOTD an interactive shell shows", async () => {
  const r = await jmp(["shell", "-l", "case=motd", "--client", "alice"], { env: { ...lab.env, SHELL: "/bin/sh" }, stdin: "exit\n" });
  expect(r.code).toBe(0);
  expect(r.stderr).toContain("Welcome to the bench\nBoard flashed with build 42");
});

test("--exit-on-lease-end: the exporter serves one lease, runs its afterLease hook, and exits 0", async () => {
  const exporter = lab.exporters.get("exit-on-lease-end")!;
  const r = await shell("exit-on-lease-end");
  expect(r.code).toBe(0);
  expect(r.out).toContain("afterLease: AFTER_HOOK: before the exit");
  expect(await exporter.exited()).toBe(0);
  expect(exporter.output).toContain("stopping: exitOnLeaseEnd is set");
});
