/**
 * For tests that check struct layouts and numbers against the C headers themselves:
 * a C program, compiled here with gcc and, when aarch64-linux-gnu-gcc and
 * qemu-aarch64-static are installed, for arm64 (a Raspberry Pi's) and run under qemu.
 *
 * @example
 * describeOnTargets("the sizes match <linux/gpio.h>", SOURCE, (program) => {
 *   test("sizes", () => {
 *     expect(program.build()).toBe("");
 *     expect(JSON.parse(program.run("constants")).sizes).toEqual([68, 256]);
 *   });
 * });
 */
import { afterAll, describe } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CTarget {
  /** For test names: `x86-64 (this machine)`, `arm64`. */
  arch: string;
  compiler: string;
  /** The command line that runs a program built for this target. */
  run: (exe: string) => string[];
}

/**
 * A describe block `title on <arch>` for each target, whose tests get `source` as a
 * CProgram built for it. Skipped where gcc is missing, and for arm64 where its cross
 * compiler or qemu is; a line on stderr says what to install.
 */
export function describeOnTargets(title: string, source: string, body: (program: CProgram) => void): void {
  const targets: CTarget[] = [{ arch: "x86-64 (this machine)", compiler: "gcc", run: (exe) => [exe] }];
  if (Bun.which("aarch64-linux-gnu-gcc") && Bun.which("qemu-aarch64-static")) {
    targets.push({ arch: "arm64", compiler: "aarch64-linux-gnu-gcc", run: (exe) => ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", exe] });
  } else {
    console.warn(`${title}: not checked on arm64 (apt-get install -y gcc-aarch64-linux-gnu qemu-user-static)`);
  }
  const missing = !Bun.which("gcc");
  if (missing) console.warn(`${title}: not checked (gcc is missing)`);
  const dir = mkdtempSync(join(tmpdir(), "jmp-c-headers-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  describe.skipIf(missing).each(targets)(`${title} on $arch`, (t) => body(new CProgram(t, source, dir)));
}

/** A C program for one target, compiled in `dir` on first use (with warnings as errors). */
export class CProgram {
  private compilerSaid?: string;

  constructor(
    private readonly target: CTarget,
    private readonly source: string,
    private readonly dir: string,
  ) {}

  private get exe(): string {
    return join(this.dir, `layout-${this.target.compiler}`);
  }

  /** What the compiler said: empty when it built. */
  build(): string {
    if (this.compilerSaid === undefined) {
      const file = `${this.exe}.c`;
      writeFileSync(file, this.source);
      this.compilerSaid = Bun.spawnSync([this.target.compiler, "-Wall", "-Werror", "-o", this.exe, file]).stderr.toString();
    }
    return this.compilerSaid;
  }

  /** Runs the program with `args`: its stdout; throws with its stderr when it fails. */
  run(...args: string[]): string {
    const errors = this.build();
    if (errors) throw new Error(`${this.target.compiler} could not build the program: ${errors}`);
    const r = Bun.spawnSync([...this.target.run(this.exe), ...args]);
    if (r.exitCode !== 0) throw new Error(`the ${this.target.arch} program (${args.join(" ")}) failed: ${r.stderr.toString()}`);
    return r.stdout.toString();
  }

  /** The path of a file beside the program, for data it reads or writes; `bytes`, when given, are written there first. */
  file(name: string, bytes?: Uint8Array): string {
    const path = join(this.dir, `${this.target.compiler}-${name}`);
    if (bytes) writeFileSync(path, bytes);
    return path;
  }
}
