/** Exporter footprint: idle RSS of `jmp run` serving the simulated board vs. an idle compiled empty program. */
import type { BenchLab } from "./lab.ts";
import { cost, rssMiB, type Options, type Result } from "./lib.ts";
import { compileProgram } from "./startup.ts";

export async function footprint(_opts: Options, lab: BenchLab): Promise<Result[]> {
  const idle = compileProgram("setInterval(() => {}, 1 << 30);\n");
  const proc = Bun.spawn([idle.exe], { stdout: "ignore", stderr: "ignore" });
  try {
    // Both settled: the exporter registered before this ran; the empty program gets a moment to map its heap.
    await Bun.sleep(1000);
    return [cost("exporter idle RSS (sim board)", rssMiB(lab.simBoard.pid), rssMiB(proc.pid), "MiB", "jmp run --exporter and its session process, registered, no lease; floor = idle compiled empty program")];
  } finally {
    proc.kill();
    await proc.exited;
    idle.remove();
  }
}
