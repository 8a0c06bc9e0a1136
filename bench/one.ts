/**
 * Runs some of the benchmarks of a given checkout and prints their results as
 * one JSON line: `bun bench/one.ts --tree DIR --only stream,router-call [--quick]`.
 * `compare.ts` runs it on two checkouts in turn. It imports the benchmark files
 * of DIR itself, so each side is measured by its own code and its own dist/jmp;
 * only this driver is shared, and it relies on nothing newer than the exports
 * the benchmark files have had since they were written.
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    tree: { type: "string" },
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    // The scale benchmark's exporter counts (e.g. 100,1000), to compare one size without the full series.
    "scale-levels": { type: "string" },
    // The scale benchmark's churn in ms per step (5000; the first step warms up for half as long).
    "scale-churn-ms": { type: "string" },
  },
});
const tree = resolve(values.tree ?? join(import.meta.dir, ".."));
const only = (values.only ?? "").split(",").filter(Boolean);

/** name → [file in bench/, export, does it need the lab]. */
export const BENCHMARKS: Record<string, [string, string, boolean]> = {
  startup: ["startup.ts", "startup", false],
  "local-call": ["local-call.ts", "localCall", false],
  "exporter-call": ["exporter-call.ts", "exporterCall", false],
  footprint: ["footprint.ts", "footprint", true],
  "router-call": ["router-call.ts", "routerCall", true],
  stream: ["stream.ts", "byteStream", true],
  "flash-router": ["flash-router.ts", "flashRouter", true],
  forward: ["forward.ts", "portForward", false],
  flash: ["flash.ts", "flash", false],
  "console-capture": ["console-capture.ts", "consoleCapture", false],
  "metrics-cost": ["metrics-cost.ts", "metricsCost", false],
  scale: ["scale.ts", "controllerScale", false],
  // The same churn on the Kubernetes store (one replica on the API server double).
  "scale-k8s": ["scale.ts", "controllerScale", false],
  history: ["history.ts", "controllerHistory", false],
};

const unknown = only.filter((n) => !(n in BENCHMARKS));
if (!only.length || unknown.length) {
  console.error(`--only: expected a comma-separated list of ${Object.keys(BENCHMARKS).join(", ")}${unknown.length ? `; unknown: ${unknown.join(", ")}` : ""}`);
  process.exit(2);
}

const load = (file: string) => import(join(tree, "bench", file)) as Promise<Record<string, (...a: unknown[]) => Promise<any>>>;
const opts = { quick: values.quick };
const levels = values["scale-levels"]?.split(",").map(Number);
const churnMs = values["scale-churn-ms"] ? Number(values["scale-churn-ms"]) : undefined;
const results: unknown[] = [];
const needsLab = only.some((n) => BENCHMARKS[n]![2]);
const lab = needsLab ? (await (await load("lab.ts")).startLab!()) as { close(): Promise<void> } : undefined;
try {
  for (const name of only) {
    const [file, fn, withLab] = BENCHMARKS[name]!;
    const run = (await load(file))[fn]!;
    // controllerScale has taken (opts, { levels, churnMs }) since it was written, and { backend } since 70b6deb.
    const extra = name === "scale-k8s" ? [{ levels, churnMs, backend: "kubernetes" }] : name === "scale" && (levels || churnMs) ? [{ levels, churnMs }] : [];
    results.push(...(withLab ? await run(opts, lab) : await run(opts, ...extra)));
  }
} finally {
  await lab?.close();
}
console.log(JSON.stringify(results));
// Leases' HTTP/2 connections and watchdog timers would keep the process alive.
process.exit(0);
