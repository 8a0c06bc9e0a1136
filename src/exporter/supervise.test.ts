/**
 * The restart loop, with real processes: a supervisor process (this module run by
 * bun) and shell-script workers that record each start in a file.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../common/eventually.ts";
import { DEFAULT_POLICY, policyFrom, STARTED_FD_ENV, WORKER_ENV, type SuperviseOptions } from "./supervise.ts";

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface Supervisor {
  proc: ReturnType<typeof Bun.spawn>;
  /** Resolves with the supervisor's exit code and what it logged. */
  result: Promise<{ code: number; stderr: string }>;
  /** How many workers have started (one line each in the runs file). */
  runs(): number;
  file(name: string): string;
}

/**
 * Starts a supervisor whose worker is `sh -c SCRIPT` with $D set to a scratch
 * directory. The script first says it has started, as enterWorker() does.
 */
function startSupervisor(script: string, opts: Partial<SuperviseOptions> = {}): Supervisor {
  dir = mkdtempSync(join(tmpdir(), "jmp-supervise-"));
  const main = join(dir, "supervisor.ts");
  writeFileSync(main, `import { supervise } from ${JSON.stringify(join(import.meta.dir, "supervise.ts"))};\n` +
    "process.exit(await supervise(JSON.parse(process.argv[2])));\n");
  const options: SuperviseOptions = {
    command: ["sh", "-c", `echo "$${WORKER_ENV}" >> "$D/runs"; echo started >&$${STARTED_FD_ENV}; ${script}`],
    maxRapidFailures: 5,
    rapidFailureWindowMs: 60_000,
    exitOnLeaseEnd: false,
    ...opts,
  };
  const proc = Bun.spawn([process.execPath, main, JSON.stringify(options)], {
    env: { ...process.env, D: dir, NO_COLOR: "1" },
    stdout: "ignore",
    stderr: "pipe",
  });
  const result = Promise.all([proc.exited, new Response(proc.stderr).text()]).then(([code, stderr]) => ({ code, stderr }));
  const file = (name: string) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), "utf8") : "");
  return { proc, result, file, runs: () => file("runs").split("\n").filter(Boolean).length };
}

/** Running, not a zombie waiting for whoever adopted it to reap it. */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

describe("supervise", () => {
  test("a worker that keeps exiting cleanly at once makes it exit 1 after maxRapidFailures starts", async () => {
    const s = startSupervisor("exit 0", { maxRapidFailures: 3 });
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(s.runs()).toBe(3);
    expect(stderr).toContain("rapid failure 3/3");
    expect(stderr).toContain("failed 3 times in a row, each within 60s");
    // Journald gets one plain line per event.
    expect(stderr).not.toContain("\x1b[");
  });

  test("a run longer than the window resets the count", async () => {
    // Starts 1 and 3 and 4 are rapid; start 2 outlives the window. Without the reset,
    // start 3 would already be the second rapid failure in a row.
    // A window long enough that a quick start counts as rapid on a loaded machine (400 ms did not: a start took longer).
    const s = startSupervisor('[ "$(wc -l < "$D/runs")" -eq 2 ] && sleep 2.5; exit 0', { maxRapidFailures: 2, rapidFailureWindowMs: 2000 });
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(s.runs()).toBe(4);
    expect(stderr).toContain("rapid failure count reset");
  });

  test("a failing worker's exit code is passed on without a restart", async () => {
    const s = startSupervisor("exit 2");
    expect((await s.result).code).toBe(2);
    expect(s.runs()).toBe(1);
  });

  test("exitOnLeaseEnd: a clean exit ends the supervisor with 0", async () => {
    const s = startSupervisor("exit 0", { exitOnLeaseEnd: true });
    expect((await s.result).code).toBe(0);
    expect(s.runs()).toBe(1);
  });

  test("SIGHUP reaches the worker; once it is done the supervisor exits 129, not restarting it", async () => {
    const s = startSupervisor(`trap 'echo finishing > "$D/hup"; exit 0' HUP; touch "$D/ready"; while :; do sleep 0.05; done`);
    await eventually(() => expect(existsSync(join(dir, "ready"))).toBe(true), { what: "the worker", interval: 20 });
    s.proc.kill("SIGHUP");
    expect((await s.result).code).toBe(129);
    expect(s.file("hup")).toBe("finishing\n");
    expect(s.runs()).toBe(1);
  });

  test("SIGTERM stops the worker and its subprocesses; the exit code says so", async () => {
    const s = startSupervisor(`sleep 30 & echo $! > "$D/child"; wait`);
    await eventually(() => expect(s.file("child").endsWith("\n")).toBe(true), { what: "the worker's subprocess", interval: 20 });
    const child = Number(s.file("child"));
    expect(alive(child)).toBe(true);
    s.proc.kill("SIGTERM");
    expect((await s.result).code).toBe(143);
    await eventually(() => expect(alive(child)).toBe(false), { what: "the subprocess to stop", interval: 20 });
    expect(s.runs()).toBe(1);
  });

  test("a worker left behind by a killed supervisor stops by itself", async () => {
    const workerMain = join(mkdtempSync(join(tmpdir(), "jmp-worker-")), "worker.ts");
    writeFileSync(workerMain, `import { enterWorker } from ${JSON.stringify(join(import.meta.dir, "supervise.ts"))};
      import { writeFileSync } from "node:fs";
      const D = process.env.D;
      writeFileSync(D + "/entered", String(enterWorker()) + " " + String(process.env.${WORKER_ENV}) + " " + String(process.env.${STARTED_FD_ENV}));
      process.on("SIGTERM", () => { writeFileSync(D + "/stopped", "SIGTERM"); process.exit(143); });
      setInterval(() => {}, 1000);`);
    const s = startSupervisor("", { command: [process.execPath, workerMain] });
    await eventually(() => expect(existsSync(join(dir, "entered"))).toBe(true), { what: "the worker", interval: 20 });
    // It knows it is the worker, and what it starts does not inherit that.
    expect(s.file("entered")).toBe("true undefined undefined");
    s.proc.kill("SIGKILL");
    await s.result;
    await eventually(() => expect(existsSync(join(dir, "stopped"))).toBe(true), { what: "the orphaned worker to stop", interval: 20 });
    rmSync(join(workerMain, ".."), { recursive: true, force: true });
  });

  test("a worker that fails before it began (exit 127, no output) is explained in one line; the supervisor exits 1", async () => {
    const s = startSupervisor("", { command: ["sh", "-c", "exit 127"], startHint: "check that sh runs here" });
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toEqual([
      "ERROR supervisor: the exporter could not start: 'sh -c exit 127' exited with status 127 before it began; check that sh runs here",
    ]);
  });

  test("a worker killed by a signal before it began is explained too", async () => {
    const s = startSupervisor("", { command: ["sh", "-c", "kill -SEGV $$"] });
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(stderr).toContain("the exporter could not start: 'sh -c kill -SEGV $$' was killed by SIGSEGV before it began; check that this command runs on its own");
  });

  test("the real worker says it has started: its failure after that is its own, passed on", async () => {
    const workerMain = join(mkdtempSync(join(tmpdir(), "jmp-worker-")), "worker.ts");
    writeFileSync(workerMain, `import { enterWorker } from ${JSON.stringify(join(import.meta.dir, "supervise.ts"))};
      enterWorker();
      console.error("bad.yaml: export.power.type: unknown driver type");
      process.exit(2);`);
    const s = startSupervisor("", { command: [process.execPath, workerMain] });
    const { code, stderr } = await s.result;
    expect(code).toBe(2);
    expect(stderr).not.toContain("could not start");
    rmSync(join(workerMain, ".."), { recursive: true, force: true });
  });

  test("the worker tells its config's policy: exitOnLeaseEnd ends the supervisor at the first clean exit", async () => {
    const policy = JSON.stringify({ maxRapidFailures: 5, rapidFailureWindowMs: 60_000, exitOnLeaseEnd: true });
    const s = startSupervisor(`echo '${policy}' >&$${STARTED_FD_ENV}; exit 0`);
    expect((await s.result).code).toBe(0);
    expect(s.runs()).toBe(1);
  });

  test("the worker tells its config's policy: maxRapidFailures 2 gives up after two quick exits, not the default five", async () => {
    const policy = JSON.stringify({ maxRapidFailures: 2, rapidFailureWindowMs: 60_000, exitOnLeaseEnd: false });
    const s = startSupervisor(`echo '${policy}' >&$${STARTED_FD_ENV}; exit 0`);
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(s.runs()).toBe(2);
    expect(stderr).toContain("rapid failure 2/2");
  });

  test("a worker that cannot be started is reported", async () => {
    const s = startSupervisor("", { command: [join(tmpdir(), "no-such-jmp-binary")] });
    const { code, stderr } = await s.result;
    expect(code).toBe(1);
    expect(stderr).toContain("cannot start the exporter");
  });
});

describe("policyFrom: what a worker tells, checked", () => {
  const told = (p: object) => `started\n${JSON.stringify(p)}\n`;
  test("a whole policy is taken", () => {
    expect(policyFrom(told({ maxRapidFailures: 3, rapidFailureWindowMs: 1000, exitOnLeaseEnd: true }), DEFAULT_POLICY)).toEqual({
      maxRapidFailures: 3, rapidFailureWindowMs: 1000, exitOnLeaseEnd: true,
    });
  });
  test("nothing told, a broken line or wrong values keep the policy before", () => {
    expect(policyFrom("started\n", DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
    expect(policyFrom("started\n{not json\n", DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
    expect(policyFrom(told({ maxRapidFailures: 0, rapidFailureWindowMs: -1, exitOnLeaseEnd: "yes" }), DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
    expect(policyFrom(told({ maxRapidFailures: 2.5 }), DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
  });
});
