/**
 * What metrics cost a driver call through the router: two exporters in one lab, one
 * with `--metrics-listen` (every session call counted and timed) and one without,
 * both leased through the same controller and embedded router, called in alternating
 * rounds. The floor is the exporter without metrics; the bound is 1.03x.
 * (The controller's own metrics are always on; on this path they add one addition per
 * forwarded chunk in the router, which both sides pay.)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { PowerClient } from "../drivers/power/client.ts";
import { lease } from "../src/api/session.ts";
import { Lab } from "../test/distributed/lab.ts";
import { create } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { newRegistry, rpcMetricsInterceptor } from "../src/common/metrics.ts";
import { DriverCallRequestSchema, ExporterService } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { callFigures, cost, median, type Options, type Result } from "./lib.ts";

/**
 * The interceptor's own time per call, in µs: a unary call through it to a handler that
 * does nothing, minus the same call straight to the handler. Alternating batches.
 */
async function interceptorMicros(n: number): Promise<number> {
  const interceptor: Interceptor = rpcMetricsInterceptor(newRegistry());
  const method = ExporterService.method.driverCall;
  const answer = { stream: false as const, service: ExporterService, method, header: new Headers(), trailer: new Headers(), message: {} };
  const next = async () => answer as never;
  const wrapped = interceptor(next);
  const req = { stream: false, service: ExporterService, method, message: create(DriverCallRequestSchema, {}) } as never;
  const batch = async (fn: (r: never) => Promise<unknown>) => {
    const t = performance.now();
    for (let i = 0; i < 1000; i++) await fn(req);
    return ((performance.now() - t) * 1000) / 1000;
  };
  const withIt: number[] = [], without: number[] = [];
  for (let i = 0; i < n; i++) {
    withIt.push(await batch(wrapped));
    without.push(await batch(next));
  }
  return Math.max(0, median(withIt) - median(without));
}

const drivers = { power: PowerClient };

export async function metricsCost({ quick }: Options): Promise<Result[]> {
  const lab = await Lab.start();
  const boards: { close(): Promise<void> }[] = [];
  try {
    await lab.addClient("bench");
    for (const [name, extra] of [["m-on", ["--metrics-listen", "127.0.0.1:0"]], ["m-off", []]] as const) {
      const file = await lab.addExporter(name, { bench: name });
      const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      doc.export = { power: { type: "jumpstarter_driver_power.driver.MockPower" } };
      writeFileSync(file, stringify(doc));
      await lab.runExporter(name, [...extra]);
    }
    process.env.JMP_CLIENT_CONFIG_HOME = lab.env.JMP_CLIENT_CONFIG_HOME;
    const on = await lease({ selector: "bench=m-on", client: "bench", drivers, timeout: 30_000 });
    boards.push(on);
    const off = await lease({ selector: "bench=m-off", client: "bench", drivers, timeout: 30_000 });
    boards.push(off);
    const figures = await callFigures("router call with metrics", () => on.power.on(), () => off.power.on(), {
      calls: quick ? 400 : 5000, rounds: quick ? 2 : 5, floorNote: "the same call to an exporter without --metrics-listen, same lab, alternating rounds",
    });
    // The end-to-end figures swing by ±20% on a loaded 2-core machine either way; the
    // interceptor's own time, measured apart, says what it adds to the median call.
    const us = await interceptorMicros(quick ? 20 : 200);
    const p50 = figures[0]!.floor;
    figures.push(cost("router call + metrics interceptor (p50)", p50 + us, p50, "µs", `the interceptor alone takes ${us.toFixed(2)} µs per call (a no-op handler with and without it), added to the median call without metrics`));
    return figures;
  } finally {
    for (const b of boards) await b.close();
    await lab.close();
  }
}

if (import.meta.main) {
  for (const r of await metricsCost({ quick: process.argv.includes("--quick") })) console.log(`${r.name}: ${r.value.toFixed(0)} vs ${r.floor.toFixed(0)} ${r.unit} = ${r.ratio.toFixed(3)}x ${r.note}`);
  process.exit(0);
}
