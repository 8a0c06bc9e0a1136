/**
 * The exporter alone: `jmp run` in direct mode (h2c on loopback TCP) answering
 * MockPower's `on()` as a DriverCall, against a bare grpcio (C-core) server
 * answering the same DriverCall with the same reply bytes (bench/grpcio-floor.py).
 * One client drives both (grpcio's own, see grpcio-client.py), so what differs is the server.
 * Then growth: the exporter's RSS after many more calls than the first thousand.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { eventually } from "../src/api/eventually.ts";
import { sessionConnection, type SessionConnection } from "../src/client/transport.ts";
import { DriverCallRequestSchema, DriverCallResponseSchema, ExporterService } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { freePort, tcpAccepts, tempDir, whileRunning } from "../test/helpers.ts";
import { PYTHON } from "../test/interop/procs.ts";
import { concurrent, cost, cpuSeconds, median, percentile, rate, rssMiB, type Options, type Result } from "./lib.ts";
import { JMP } from "./startup.ts";

const CONFIG = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: { namespace: default, name: bench }
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
`;

interface Server {
  proc: ReturnType<typeof Bun.spawn>;
  connection: SessionConnection;
  call(): Promise<unknown>;
}

/** Spawns a server on a free loopback port and connects a gRPC client to it. */
async function start(argv: (port: number) => string[], what: string): Promise<Omit<Server, "call"> & { port: number }> {
  const port = await freePort();
  let output = "";
  const proc = Bun.spawn(argv(port), { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  for (const s of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of s) output += new TextDecoder().decode(chunk);
    })();
  }
  await eventually(() => tcpAccepts(port), { what: `${what} to listen on ${port}`, interval: 20, signal: whileRunning(proc, what, () => output) });
  return { proc, port, connection: sessionConnection({ host: `127.0.0.1:${port}`, insecure: true }) };
}

async function stop(s: Server | undefined): Promise<void> {
  if (!s) return;
  s.connection.close();
  s.proc.kill();
  await s.proc.exited;
}

export async function exporterCall({ quick }: Options): Promise<Result[]> {
  const dir = tempDir("jmp-bench-");
  let jmp: Server | undefined, floor: Server | undefined;
  try {
    const config = dir.file("exporter.yaml", CONFIG);
    const j = await start((port) => [JMP, "run", "--exporter-config", config, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"], "jmp run");
    const jc = createClient(ExporterService, j.connection.transport);
    const report = await jc.getReport({});
    const uuid = report.reports.find((r) => r.labels["jumpstarter.dev/name"] === "power")!.uuid;
    const request = { uuid, method: "on", args: [] };
    jmp = { ...j, call: () => jc.driverCall(request) };
    // The floor replies with exactly the bytes jmp's exporter replies with.
    const reply = Buffer.from(toBinary(DriverCallResponseSchema, await jc.driverCall(request))).toString("hex");
    const f = await start((port) => [PYTHON, `${import.meta.dir}/grpcio-floor.py`, String(port), reply], "the grpcio floor server");
    const fc = createClient(ExporterService, f.connection.transport);
    floor = { ...f, call: () => fc.driverCall(request) };

    // Every call to jmp's exporter counts towards the growth figure, the latency rounds' too.
    let calls = 1;
    const counted = () => (calls++, jmp!.call());
    await concurrent(counted, 1000 - calls, 16);
    const after1k = await settledRss(jmp.proc.pid);
    const rounds = quick ? 2 : 5, per = quick ? 200 : 1000;
    const cpuBefore = [cpuSeconds(j.proc.pid), cpuSeconds(f.proc.pid)];
    const [mine, theirs] = await grpcioClient(toBinary(DriverCallRequestSchema, create(DriverCallRequestSchema, request)), per * rounds, rounds, [j.port, f.port]);
    // Each server got the 200 warm-up calls, the sequential ones and as many with 16 in flight.
    const served = 200 + per * rounds * 2;
    calls += served;
    const cpuPerCall = [cpuSeconds(j.proc.pid) - cpuBefore[0]!, cpuSeconds(f.proc.pid) - cpuBefore[1]!].map((s) => s * 1e6 / served);
    const n = per * rounds;
    const figures = [
      cost("exporter call: power.on() p50", median(mine!.lat), median(theirs!.lat), "µs",
        `${n} sequential calls from grpcio's C-core client; floor = bare grpcio (C-core, asyncio) server with a canned DriverCall reply; both h2c on loopback TCP`),
      cost("exporter call: power.on() p99", percentile(mine!.lat, 0.99), percentile(theirs!.lat, 0.99), "µs",
        `jmp's p99/p50 ${(percentile(mine!.lat, 0.99) / median(mine!.lat)).toFixed(2)}, goal at most 2`),
      rate("exporter call: power.on() calls/s", mine!.perSecond, theirs!.perSecond, "calls/s", "one caller"),
      rate("exporter call: power.on() calls/s x16", mine!.concurrent, theirs!.concurrent, "calls/s", "16 calls in flight on one channel"),
      cost("exporter call: power.on() CPU per call", cpuPerCall[0]!, cpuPerCall[1]!, "µs",
        `the server's user + system time over the client's ${served} calls; hardly moved by other load on the machine`),
    ];
    const total = quick ? 10_000 : 100_000;
    await concurrent(counted, total - calls, 16);
    const afterAll = await settledRss(jmp.proc.pid);
    return [...figures, cost(`exporter RSS after ${total / 1000}k calls`, afterAll, after1k, "MiB",
      `jmp run (direct mode); floor = the same after 1k calls; +${(afterAll - after1k).toFixed(1)} MiB, goal at most +5`)];
  } finally {
    await stop(jmp);
    await stop(floor);
    dir.remove();
  }
}

interface ClientFigures {
  lat: number[];
  perSecond: number;
  concurrent: number;
}

/**
 * bench/grpcio-client.py against each loopback port in turn: the servers measured by one C-core client.
 * Not spawnSync: this process must go on reading the servers' output meanwhile, or a
 * server blocks on (or buffers for) a full stderr pipe, which is no server's normal life.
 */
async function grpcioClient(request: Uint8Array, calls: number, rounds: number, ports: number[]): Promise<ClientFigures[]> {
  const proc = Bun.spawn([PYTHON, `${import.meta.dir}/grpcio-client.py`, Buffer.from(request).toString("hex"), String(calls), String(rounds),
    ...ports.map((p) => `127.0.0.1:${p}`)], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`grpcio-client.py exited ${code}: ${err}`);
  return JSON.parse(out) as ClientFigures[];
}

/**
 * A GC-settled RSS cannot be asked for from outside, so: the lowest of a few
 * readings over three seconds of idling, long enough for the exporter's own full
 * collection after a burst (src/common/idle-gc.ts: 1–2 s after the last call).
 */
async function settledRss(pid: number): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < 15; i++) {
    await Bun.sleep(200);
    low = Math.min(low, rssMiB(pid));
  }
  return low;
}
