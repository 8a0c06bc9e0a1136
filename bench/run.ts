/**
 * `npm run bench`: figures measured side by side in one run, each next to its floor
 * (this machine is shared and noisy, so ratios mean more than absolutes).
 * `--quick` runs fewer iterations (CI smoke). Writes bench/results.json.
 * So far: start-up time and the local unary driver call; more come with later work.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../src/testing/serve.ts";
import { MockPower } from "../drivers/power/driver.ts";
import type { PowerClient } from "../drivers/power/client.ts";

const quick = process.argv.includes("--quick");
const root = join(import.meta.dir, "..");
const jmp = join(root, "dist/jmp");

interface Result { name: string; value: number; floor: number; ratio: number; unit: string; note: string }
const results: Result[] = [];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

function timeRuns(argv: string[], runs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" });
    out.push(performance.now() - t);
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}`);
  }
  return out;
}

// 1. Start-up: the executable vs. an empty program compiled by the same runtime.
{
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-"));
  writeFileSync(join(dir, "empty.ts"), "export {};\n");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", join(dir, "empty.ts"), "--outfile", join(dir, "empty")], { stdout: "ignore", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`cannot compile the empty program: ${build.stderr}`);
  const runs = quick ? 5 : 25;
  // Interleave so that noise hits both sides alike.
  const empty: number[] = [], help: number[] = [], version: number[] = [];
  for (let i = 0; i < runs; i++) {
    empty.push(...timeRuns([join(dir, "empty")], 1));
    help.push(...timeRuns([jmp, "--help"], 1));
    version.push(...timeRuns([jmp, "version"], 1));
  }
  const floor = median(empty);
  results.push({ name: "startup: jmp --help", value: median(help), floor, ratio: median(help) / floor, unit: "ms", note: `median of ${runs}; floor = empty compiled program` });
  results.push({ name: "startup: jmp version", value: median(version), floor, ratio: median(version) / floor, unit: "ms", note: `median of ${runs}` });
  rmSync(dir, { recursive: true, force: true });
}

// 2. Local unary driver call: power.on() over the session's Unix socket vs. a bare
//    HTTP/2 request on the same kind of socket.
{
  const calls = quick ? 300 : 5000;
  const served = await serve<PowerClient>(new MockPower({}));
  for (let i = 0; i < 200; i++) await served.client.on();
  const lat: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await served.client.on();
    lat.push((performance.now() - t) * 1000);
  }
  await served.close();

  const http2 = await import("node:http2");
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-"));
  const sock = join(dir, "floor.sock");
  const server = http2.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(sock, () => r()));
  const { connect } = await import("node:net");
  const session = http2.connect("http://localhost", { createConnection: () => connect(sock) });
  const request = () => new Promise<void>((resolve, reject) => {
    const s = session.request({ ":method": "POST", ":path": "/" });
    s.on("data", () => {});
    s.on("end", () => resolve());
    s.on("error", reject);
    s.end("x");
  });
  for (let i = 0; i < 200; i++) await request();
  const floorLat: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await request();
    floorLat.push((performance.now() - t) * 1000);
  }
  session.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
  const floorMean = floorLat.reduce((a, b) => a + b, 0) / floorLat.length;
  results.push({ name: "local call: power.on() p50", value: median(lat), floor: median(floorLat), ratio: median(lat) / median(floorLat), unit: "µs", note: `${calls} sequential calls; floor = bare node:http2 request on a Unix socket` });
  results.push({ name: "local call: power.on() p99", value: percentile(lat, 0.99), floor: percentile(floorLat, 0.99), ratio: percentile(lat, 0.99) / percentile(floorLat, 0.99), unit: "µs", note: "" });
  results.push({ name: "local call: power.on() mean", value: mean, floor: floorMean, ratio: mean / floorMean, unit: "µs", note: "" });
}

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`${pad("benchmark", 30)} ${pad("value", 10)} ${pad("floor", 10)} ratio`);
for (const r of results) {
  console.log(`${pad(r.name, 30)} ${pad(`${r.value.toFixed(1)} ${r.unit}`, 10)} ${pad(`${r.floor.toFixed(1)} ${r.unit}`, 10)} ${r.ratio.toFixed(2)}x`);
}
writeFileSync(join(import.meta.dir, "results.json"), JSON.stringify({ quick, machine: `${process.platform}-${process.arch}`, date: new Date().toISOString(), results }, null, 2));
