/**
 * The labs a test file starts, each closed after its test (a failed test leaves no
 * controller or exporter running). Kept apart from lab.ts, which the benchmarks import
 * outside the test runner.
 */
import { afterEach } from "bun:test";
import { Lab } from "./lab.ts";

export function labsPerTest(): { start(): Promise<Lab>; onePi(): Promise<Lab> } {
  const open: Lab[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
  }, 30_000);
  const start = async () => {
    const l = await Lab.start();
    open.push(l);
    return l;
  };
  return {
    start,
    /** A lab with exporter pi-1 (board=rpi4) running and client alice. */
    async onePi() {
      const l = await start();
      await l.addExporter("pi-1", { board: "rpi4" });
      await l.addClient("alice");
      await l.runExporter("pi-1");
      return l;
    },
  };
}
