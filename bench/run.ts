/**
 * `npm run bench [-- --quick]`: every figure measured next to its floor in the same
 * run (this machine is shared and noisy, so ratios mean more than absolutes).
 * Prints the table and writes bench/results.json. `--quick` is the CI smoke run:
 * fewer iterations, smaller payloads; it never fails on speed.
 * Needs dist/jmp (`npm run build`).
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { exporterCall } from "./exporter-call.ts";
import { flash } from "./flash.ts";
import { flashRouter } from "./flash-router.ts";
import { footprint } from "./footprint.ts";
import { portForward } from "./forward.ts";
import { startLab } from "./lab.ts";
import type { Options, Result } from "./lib.ts";
import { localCall } from "./local-call.ts";
import { routerCall } from "./router-call.ts";
import { controllerHistory } from "./history.ts";
import { controllerScale } from "./scale.ts";
import { schedulingPass } from "./scheduling.ts";
import { startup } from "./startup.ts";
import { byteStream } from "./stream.ts";
import { consoleCapture } from "./console-capture.ts";
import { metricsCost } from "./metrics-cost.ts";

const opts: Options = { quick: process.argv.includes("--quick") };
const results: Result[] = [];
const started = performance.now();
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const loadBefore = load();

function show(rs: Result[]): void {
  for (const r of rs) {
    const fmt = (v: number) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${r.unit}`;
    console.log(`${r.name.padEnd(36)} ${fmt(r.value).padStart(16)} ${fmt(r.floor).padStart(16)} ${`${r.ratio.toFixed(2)}x`.padStart(7)}`);
  }
  results.push(...rs);
}

console.log(`${"benchmark".padEnd(36)} ${"value".padStart(16)} ${"floor".padStart(16)} ${"ratio".padStart(7)}`);
show(await startup(opts));
show(await localCall(opts));
show(await exporterCall(opts));
const lab = await startLab();
try {
  show(await footprint(opts, lab));
  show(await routerCall(opts, lab));
  show(await byteStream(opts, lab));
  show(await flashRouter(opts, lab));
} finally {
  await lab.close();
}
show(await portForward(opts));
show(await flash(opts));
show(await consoleCapture(opts));
show(await metricsCost(opts));
show(await controllerScale(opts));
// The same on the Kubernetes store (one replica on the API server double), next to SQLite's.
show(await controllerScale(opts, { backend: "kubernetes" }));
show(await controllerHistory(opts));
show(await schedulingPass(opts));

const machine = `${availableParallelism()} cpus, ${process.arch}, load average ${loadBefore} before, ${load()} after`;
console.log(`ratio: above 1 is slower or bigger than the floor. ${machine}; ${((performance.now() - started) / 1000).toFixed(0)} s`);
writeFileSync(
  join(import.meta.dir, "results.json"),
  `${JSON.stringify({ quick: opts.quick, machine, date: new Date().toISOString(), results }, null, 2)}\n`,
);
// The lease's HTTP/2 connections and the watchdog's timers would keep the process alive.
process.exit(0);
