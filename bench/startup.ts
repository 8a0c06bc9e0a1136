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

function wallMs(argv: string[]): number {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}`);
  return performance.now() - t;
}

export async function startup({ quick }: Options): Promise<Result[]> {
  const empty = compileProgram("export {};\n");
  const runs = quick ? 5 : 25;
  const floor: number[] = [], help: number[] = [], version: number[] = [];
  try {
    // Interleaved so that noise hits both sides alike.
    for (let i = 0; i < runs; i++) {
      floor.push(wallMs([empty.exe]));
      help.push(wallMs([JMP, "--help"]));
      version.push(wallMs([JMP, "version"]));
    }
  } finally {
    empty.remove();
  }
  return [
    cost("startup: jmp --help", median(help), median(floor), "ms", `median of ${runs}; floor = empty compiled program`),
    cost("startup: jmp version", median(version), median(floor), "ms", `median of ${runs}`),
  ];
}
