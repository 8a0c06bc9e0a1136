/**
 * Exporter footprint: idle memory of `jmp run` serving the simulated board vs. an
 * idle compiled empty program (the floor), and vs. an idle compiled program
 * that has served and made HTTP/2 requests with node:http2 and does nothing else:
 * what any exporter speaking gRPC over Bun's HTTP/2 starts from.
 */
import type { BenchLab } from "./lab.ts";
import { cost, rssMiB, sharedOnceMiB, type Options, type Result } from "./lib.ts";
import { compileProgram } from "./startup.ts";

const IDLE = "setInterval(() => {}, 1 << 30);\n";

const HTTP2_IDLE = `import http2 from "node:http2";
const server = http2.createServer((req, res) => res.end("ok"));
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const client = http2.connect("http://127.0.0.1:" + server.address().port);
for (let i = 0; i < 50; i++) {
  await new Promise((resolve) => {
    const req = client.request({ ":path": "/" });
    req.on("data", () => {});
    req.on("end", resolve);
    req.end();
  });
}
${IDLE}`;

export async function footprint(_opts: Options, lab: BenchLab): Promise<Result[]> {
  const idle = compileProgram(IDLE);
  const h2 = compileProgram(HTTP2_IDLE);
  const procs = [idle, h2].map((p) => Bun.spawn([p.exe], { stdout: "ignore", stderr: "ignore" }));
  const [empty, http2] = procs as [Bun.Subprocess, Bun.Subprocess];
  try {
    // All settled: the exporter registered before this ran; the programs get a moment to map their heaps.
    await Bun.sleep(1500);
    const tree = "jmp run --exporter and its session process, registered, no lease";
    return [
      cost("exporter idle RSS (sim board)", rssMiB(lab.simBoard.pid), rssMiB(empty.pid), "MiB", `${tree}; floor = idle compiled empty program`),
      cost("exporter idle memory, shared pages once", sharedOnceMiB(lab.simBoard.pid), sharedOnceMiB(empty.pid), "MiB", "the same, the executable's pages counted once (anonymous memory + the largest file-backed set)"),
      cost("exporter idle memory vs idle HTTP/2 program", sharedOnceMiB(lab.simBoard.pid), sharedOnceMiB(http2.pid), "MiB", "shared pages once; floor = idle compiled program that served 50 node:http2 requests"),
    ];
  } finally {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.exited));
    idle.remove();
    h2.remove();
  }
}
