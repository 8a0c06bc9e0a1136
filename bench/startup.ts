/** Start-up: `jmp --help` and `jmp version` vs. an empty program compiled by the same runtime. */
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
function timed(argv: string[]): { wall: number; cpu: number } {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}`);
  return { wall: performance.now() - t, cpu: Number(r.resourceUsage.cpuTime.total) / 1000 };
}

export async function startup({ quick }: Options): Promise<Result[]> {
  const empty = compileProgram("export {};\n");
  const runs = quick ? 5 : 25;
  const floor: { wall: number; cpu: number }[] = [], help: typeof floor = [], version: typeof floor = [];
  try {
    // Interleaved so that noise hits both sides alike.
    for (let i = 0; i < runs; i++) {
      floor.push(timed([empty.exe]));
      help.push(timed([JMP, "--help"]));
      version.push(timed([JMP, "version"]));
    }
  } finally {
    empty.remove();
  }
  const wall = (xs: typeof floor) => median(xs.map((x) => x.wall));
  // CPU time hardly moves when other work on the machine delays a process; wall time does.
  const cpu = (xs: typeof floor) => median(xs.map((x) => x.cpu));
  return [
    cost("startup: jmp --help", wall(help), wall(floor), "ms", `median of ${runs}; floor = empty compiled program`),
    cost("startup: jmp version", wall(version), wall(floor), "ms", `median of ${runs}`),
    cost("startup: jmp --help, CPU", cpu(help), cpu(floor), "ms", "user + system time of the process"),
    cost("startup: jmp version, CPU", cpu(version), cpu(floor), "ms", "user + system time of the process"),
  ];
}
