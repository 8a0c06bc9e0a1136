/**
 * Console capture under a flood: a board printing 100 MB/s (a TCP server here, behind
 * the exporter's serial driver as socket://) for a minute, during a lease nobody is
 * attached to. The exporter reads it all and sends what the controller can take; its
 * memory must stay within the capture buffer (consoleCapture.maxBytes, 8 MiB) plus
 * 20 MiB over its RSS before the lease. The figure is that growth at its peak, next
 * to the budget (buffer + 20 MiB): a ratio under 1 keeps the promise (the note says
 * PASS or FAIL, and the exporter's CPU meanwhile).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { parse, stringify } from "yaml";
import { Lab } from "../test/distributed/lab.ts";
import { cost, cpuSeconds, MiB, rate, rssMiB, type Options, type Result } from "./lib.ts";

const BUFFER = 8 * MiB;
const TARGET = 100 * MiB;

/** Writes `TARGET` bytes a second to whoever connects, in 64 KiB pieces, as fast as the reader takes them up to that. */
function floodServer(): Promise<{ port: number; sent: () => number; close: () => void }> {
  let sent = 0;
  const sockets = new Set<Socket>();
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = 32 + (i % 90);
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    const started = performance.now();
    let socketSent = 0;
    const pump = () => {
      while (!s.destroyed) {
        const due = ((performance.now() - started) / 1000) * TARGET;
        if (socketSent >= due) return void setTimeout(pump, 5);
        socketSent += chunk.length;
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
    };
    pump();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    port: (server.address() as { port: number }).port,
    sent: () => sent,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  })));
}

export async function consoleCapture({ quick }: Options): Promise<Result[]> {
  const seconds = quick ? 5 : 60;
  const flood = await floodServer();
  const lab = await Lab.start();
  try {
    const file = await lab.addExporter("flood", { bench: "flood" });
    const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    doc.export = { console: { type: "jumpstarter_driver_pyserial.driver.PySerial", config: { url: `socket://127.0.0.1:${flood.port}` } } };
    doc.consoleCapture = { maxBytes: BUFFER };
    writeFileSync(file, stringify(doc));
    await lab.addClient("bench");
    const exporter = await lab.runExporter("flood");
    await Bun.sleep(1000);
    const idle = rssMiB(exporter.pid);
    const lease = await lab.createLease("bench", "bench=flood", "10m");
    await lab.serving("flood", lease.name);
    const start = performance.now();
    const sentBefore = flood.sent();
    const cpuBefore = cpuSeconds(exporter.pid);
    let peak = idle;
    while (performance.now() - start < seconds * 1000) {
      await Bun.sleep(250);
      peak = Math.max(peak, rssMiB(exporter.pid));
    }
    const wall = (performance.now() - start) / 1000;
    const mbps = (flood.sent() - sentBefore) / MiB / wall;
    const cpu = (cpuSeconds(exporter.pid) - cpuBefore) / wall;
    await lab.ok(["lease", "delete", lease.name, "--client", "bench"]);
    const budget = BUFFER / MiB + 20;
    const growth = peak - idle;
    return [
      cost("console capture: exporter RSS growth", growth, budget, "MiB",
        `${growth <= budget ? "PASS" : "FAIL"}: a board printing ${mbps.toFixed(0)} MB/s for ${seconds} s with nobody attached; peak RSS over the ${idle.toFixed(0)} MiB before the lease; floor = the promise, 8 MiB buffer + 20 MiB (ratio <= 1 passes); exporter CPU ${(cpu * 100).toFixed(0)}% of a core meanwhile`),
      rate("console capture: bytes read", mbps, TARGET / MiB, "MiB/s", "what the exporter's capture took from the board; floor = what the board offered"),
    ];
  } finally {
    await lab.close();
    flood.close();
  }
}

if (import.meta.main) {
  for (const r of await consoleCapture({ quick: process.argv.includes("--quick") })) console.log(JSON.stringify(r));
  process.exit(0);
}
