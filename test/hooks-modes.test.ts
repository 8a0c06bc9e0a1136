/**
 * Lease hooks without a controller, on dist/jmp: local mode (`jmp shell
 * --exporter-config`: one lease, the shell between the hooks) and direct mode
 * (`jmp run --tls-grpc-listener`: beforeLease at start, afterLease at the stop);
 * hooks that misbehave; and configs whose hooks cannot run, refused at start.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, readFileSync } from "node:fs";
import { stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { freePort, jmp, JMP, tcpAccepts, tempDir, whileRunning } from "./helpers.ts";

const dir = tempDir("jmp-hook-modes-");
const running: Subprocess[] = [];

afterAll(async () => {
  for (const p of running) p.kill("SIGKILL");
  await Promise.all(running.map((p) => p.exited));
  dir.remove();
});

let n = 0;
/** An exporter config with MockPower and these hooks. */
function config(hooks: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return dir.file(`exporter-${++n}.yaml`, stringify({
    apiVersion: "jumpstarter.dev/v1alpha1",
    kind: "ExporterConfig",
    metadata: { namespace: "default", name: `bench-${n}` },
    export: { power: { type: "jumpstarter_driver_power.driver.MockPower" } },
    hooks,
    ...extra,
  }));
}

/** Whether a process still runs (not a zombie). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return !"ZX".includes(stat[stat.lastIndexOf(")") + 2]!);
  } catch {
    return false;
  }
}

const noStackTrace = (out: string) => expect(out).not.toMatch(/^\s+at .*[:(]/m);

describe("local mode", () => {
  test("beforeLease, the command, afterLease, in that order; j works in both hooks; an interactive shell shows the MOTD with what the hook added", async () => {
    const file = config({
      beforeLease: { script: 'echo "BEFORE: lease=$LEASE_NAME"\nj power on && echo "BEFORE: power on"\necho "Flashed build 42" > "$JMP_MOTD_FILE"\n' },
      afterLease: { script: 'j power off && echo "AFTER: power off"\n' },
    }, { motd: "Bench rules apply" });
    const r = await jmp(["shell", "--exporter-config", file, "--", "sh", "-c", "echo COMMAND; j power read -n 1 >/dev/null && echo COMMAND: j works"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("COMMAND\nCOMMAND: j works\n");
    expect(r.stderr).toContain("beforeLease: BEFORE: lease=local");
    expect(r.stderr.indexOf("BEFORE: power on")).toBeGreaterThan(-1);
    expect(r.stderr.indexOf("BEFORE: power on")).toBeLessThan(r.stderr.indexOf("AFTER: power off"));

    const i = await jmp(["shell", "--exporter-config", file], { env: { SHELL: "/bin/sh" }, stdin: "exit 0\n" });
    expect(i.code).toBe(0);
    expect(i.stderr).toContain("Bench rules apply\nFlashed build 42");
  });

  test("beforeLease failing with endLease or exit: the command never runs, exit 1 saying why, no afterLease", async () => {
    for (const onFailure of ["endLease", "exit"]) {
      const marker = `${dir.path}/ran-${onFailure}`;
      const file = config({
        beforeLease: { script: "echo board missing; exit 1", onFailure },
        afterLease: { script: "echo AFTER_SHOULD_NOT_RUN" },
      });
      const r = await jmp(["shell", "--exporter-config", file, "--", "touch", marker]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Error: beforeLease hook failed (onFailure: ${onFailure}): exit code 1; last output: "board missing"; the shell was not started`);
      expect(r.stderr).not.toContain("AFTER_SHOULD_NOT_RUN");
      expect(existsSync(marker)).toBe(false);
      noStackTrace(r.stderr);
    }
  });

  test("afterLease failing: warn keeps the command's exit code with a warning; endLease makes a success exit 1", async () => {
    const warn = await jmp(["shell", "--exporter-config", config({ afterLease: { script: "exit 5" } }), "--", "true"]);
    expect(warn.code).toBe(0);
    expect(warn.stderr).toContain("Warning: afterLease hook warning: exit code 5");
    const end = await jmp(["shell", "--exporter-config", config({ afterLease: { script: "exit 5", onFailure: "endLease" } }), "--", "true"]);
    expect(end.code).toBe(1);
    expect(end.stderr).toContain("Error: afterLease hook failed (onFailure: endLease): exit code 5");
  });

  test("a hook that prints binary junk, leaves children behind and ignores SIGTERM: readable output, its whole group killed at the timeout, the exporter unharmed", async () => {
    const pids = `${dir.path}/children.pid`;
    const file = config({
      beforeLease: {
        script: [
          "head -c 4000 /dev/urandom",
          'printf "\\n\\033[2J\\033[31mJUNK_DONE\\033[0m\\n"',
          `sh -c "trap '' TERM; echo \\$\\$ >> ${pids}; sleep 1000" &`,
          `(sleep 1000 & echo $! >> ${pids}; wait) &`,
          "trap '' TERM",
          "sleep 1000",
        ].join("\n"),
        timeout: 1,
      },
    });
    const t0 = performance.now();
    const r = await jmp(["shell", "--exporter-config", file, "--", "sh", "-c", "j power on && echo unharmed"], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("unharmed\n");
    // The timeout, then the grace during which SIGTERM is ignored, then SIGKILL.
    expect(performance.now() - t0).toBeLessThan(12_000);
    expect(r.stderr).toContain("JUNK_DONE");
    expect(r.stderr).toContain("Warning: beforeLease hook warning: timed out after 1 s (its process group was ended)");
    expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    const children = readFileSync(pids, "utf8").trim().split("\n").map(Number);
    expect(children).toHaveLength(2);
    for (const pid of children) expect(alive(pid)).toBe(false);
  }, 30_000);
});

describe("direct mode", () => {
  function start(file: string, port: number) {
    let err = "";
    const proc = Bun.spawn([JMP, "run", "--exporter-config", file, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"], {
      stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
    });
    void (async () => {
      for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
    })();
    running.push(proc);
    return { proc, stderr: () => err };
  }

  test("a client that connects while beforeLease runs waits for it, seeing its output; afterLease runs when the exporter stops", async () => {
    const port = await freePort();
    const exporter = start(config({
      beforeLease: { script: 'echo "BEFORE_HOOK_DIRECT: executed"\nsleep 2\nj power on\necho "BEFORE_HOOK_DIRECT: complete"\n' },
      afterLease: { script: 'echo "AFTER_HOOK_DIRECT: executed"\n' },
    }), port);
    await eventually(() => tcpAccepts(port), { what: "the exporter to listen", interval: 20, signal: whileRunning(exporter.proc, "the exporter", exporter.stderr) });
    const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--tls-grpc-insecure", "--", "j", "power", "off"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("waiting for the exporter: exporter 127.0.0.1:");
    expect(r.stderr).toContain("is running its beforeLease hook");
    expect(r.stderr).toContain("beforeLease: BEFORE_HOOK_DIRECT: complete");
    exporter.proc.kill("SIGTERM");
    expect(await exporter.proc.exited).toBe(143);
    expect(exporter.stderr()).toContain("afterLease: AFTER_HOOK_DIRECT: executed");
  });

  test("beforeLease failing with endLease: clients are refused with the exporter's reason; with exit the exporter exits 1", async () => {
    const port = await freePort();
    const exporter = start(config({ beforeLease: { script: "echo no board; exit 1", onFailure: "endLease" } }), port);
    await eventually(async () => expect(exporter.stderr()).toContain("clients are refused until the exporter is restarted"), { what: "the hook to fail", signal: whileRunning(exporter.proc, "the exporter", exporter.stderr) });
    const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--tls-grpc-insecure", "--", "j", "power", "on"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: exporter 127.0.0.1:${port}: beforeLease hook failed (onFailure: endLease): exit code 1`);
    exporter.proc.kill("SIGTERM");
    await exporter.proc.exited;

    const exiting = start(config({ beforeLease: { script: "exit 1", onFailure: "exit" } }), await freePort());
    expect(await exiting.proc.exited).toBe(1);
    expect(exiting.stderr()).toContain("beforeLease hook failed (onFailure: exit): exit code 1: stopping");
  });
});

describe("hooks that cannot run are refused at start, naming the file and the key (exit 2)", () => {
  const cases: [string, Record<string, unknown>, (file: string) => string][] = [
    ["a missing script file", { beforeLease: { script: "/opt/jmp-hooks/missing.sh" } },
      (f) => `Error: ${f}: hooks.beforeLease.script: /opt/jmp-hooks/missing.sh: no such file`],
    ["a missing interpreter", { afterLease: { script: "echo hi", exec: "/usr/bin/no-such-interpreter" } },
      (f) => `Error: ${f}: hooks.afterLease.exec: /usr/bin/no-such-interpreter: no such program, or not executable`],
  ];
  for (const [what, hooks, message] of cases) {
    test(what, async () => {
      const file = config(hooks);
      for (const args of [["shell", "--exporter-config", file, "--", "true"], ["run", "--exporter-config", file, "--tls-grpc-listener", "0", "--tls-grpc-insecure"], ["run", "--exporter-config", file]]) {
        const r = await jmp(args);
        expect({ args, code: r.code }).toEqual({ args, code: 2 });
        expect(r.stderr).toStartWith(message(file));
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
      }
    });
  }

  test("a .py script without python3 on the PATH", async () => {
    const py = dir.file("check.py", "print('hi')\n");
    const file = config({ beforeLease: { script: py } });
    const r = await jmp(["shell", "--exporter-config", file, "--", "true"], { env: { PATH: dir.path } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: ${file}: hooks.beforeLease.script: ${py} is a Python script, but python3 is not on the PATH: install it, or set hooks.beforeLease.exec\n`);
  });
});
