/**
 * Start-up: `jmp --help`, `jmp version` and a `j` command in a local shell vs. an
 * empty program compiled by the same runtime.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cost, median, type Options, type Result } from "./lib.ts";

export const JMP = join(import.meta.dir, "..", "dist/jmp");

/** Compiles a one-file program with this runtime: the floor of any Bun executable. */
export function compileProgram(source: string): { exe: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-"));
  writeFileSync(join(dir, "main.ts"), source);
  const exe = join(dir, "main");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", join(dir, "main.ts"), "--outfile", exe], { stdout: "ignore", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`cannot compile a program: ${build.stderr}`);
  return { exe, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Wall time and CPU time (user + system) of one run, in ms. */
function timed(argv: string[], env?: Record<string, string | undefined>): { wall: number; cpu: number } {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore", env });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}`);
  return { wall: performance.now() - t, cpu: Number(r.resourceUsage.cpuTime.total) / 1000 };
}

const MOCK_POWER = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: startup-bench
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
`;

/**
 * A local `jmp shell` that stays open (its command waits on stdin), and the
 * environment its `j` gets: what a script in the shell runs `j` with.
 */
async function openLocalShell(dir: string): Promise<{ env: Record<string, string | undefined>; close(): Promise<void> }> {
  const config = join(dir, "power.yaml");
  writeFileSync(config, MOCK_POWER);
  const shell = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", 'echo "$JUMPSTARTER_HOST"; exec cat >/dev/null'], {
    stdin: "pipe", stdout: "pipe", stderr: "ignore",
  });
  const reader = shell.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`jmp shell exited (${await shell.exited}) before it printed JUMPSTARTER_HOST`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  // As runShell sets it for the shell's children (src/client/shell.ts).
  const env = { ...process.env, JUMPSTARTER_HOST: text.trim(), JMP_DRIVERS_ALLOW: "UNSAFE", _JMP_SUPPRESS_DRIVER_WARNINGS: "1" };
  return {
    env,
    close: async () => {
      shell.stdin.end();
      await shell.exited;
    },
  };
}

export async function startup({ quick }: Options): Promise<Result[]> {
  const empty = compileProgram("export {};\n");
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-startup-"));
  const runs = quick ? 5 : 25;
  const floor: { wall: number; cpu: number }[] = [], help: typeof floor = [], version: typeof floor = [], j: typeof floor = [];
  const J = join(import.meta.dir, "..", "dist/j");
  try {
    const shell = await openLocalShell(dir);
    try {
      // The session's first calls warm up its exporter; the figure is a j's own cost.
      for (let i = 0; i < 3; i++) timed([J, "power", "on"], shell.env);
      // Interleaved so that noise hits both sides alike.
      for (let i = 0; i < runs; i++) {
        floor.push(timed([empty.exe]));
        help.push(timed([JMP, "--help"]));
        version.push(timed([JMP, "version"]));
        j.push(timed([J, "power", "on"], shell.env));
      }
    } finally {
      await shell.close();
    }
  } finally {
    empty.remove();
    rmSync(dir, { recursive: true, force: true });
  }
  const wall = (xs: typeof floor) => median(xs.map((x) => x.wall));
  // CPU time hardly moves when other work on the machine delays a process; wall time does.
  const cpu = (xs: typeof floor) => median(xs.map((x) => x.cpu));
  return [
    cost("startup: jmp --help", wall(help), wall(floor), "ms", `median of ${runs}; floor = empty compiled program`),
    cost("startup: jmp version", wall(version), wall(floor), "ms", `median of ${runs}`),
    cost("startup: jmp --help, CPU", cpu(help), cpu(floor), "ms", "user + system time of the process"),
    cost("startup: jmp version, CPU", cpu(version), cpu(floor), "ms", "user + system time of the process"),
    cost("startup: j power on (local shell)", wall(j), wall(floor), "ms", `median of ${runs}; a whole j command: connect, GetReport, the call, exit`),
    cost("startup: j power on (local shell), CPU", cpu(j), cpu(floor), "ms", "user + system time of the j process"),
  ];
}
