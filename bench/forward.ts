/**
 * Port forward: `jmp shell --exporter-config … -- j net forward-tcp` (local mode:
 * the client's forwarder, a byte stream on the session socket, the exporter's
 * TcpNetwork connection) carrying N MiB one way into a TCP sink in this process,
 * vs. the same bytes written straight into the same sink over loopback.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MiB, cpuSeconds, rate, cost, type Options, type Result } from "./lib.ts";
import { JMP } from "./startup.ts";

const CHUNK = 256 * 1024;

/** A TCP server that counts what it reads and says when `total` bytes are in. */
async function sink(): Promise<{ server: Server; port: number; next: (total: number) => Promise<void> }> {
  let want = 0, got = 0;
  let done: () => void = () => {};
  const server = createServer((s) => {
    s.on("data", (d: Buffer) => {
      got += d.byteLength;
      if (got >= want) done();
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    server, port,
    next: (total) => new Promise<void>((resolve) => {
      want = total;
      got = 0;
      done = resolve;
    }),
  };
}

/** Writes `total` bytes to host:port and resolves with the seconds until the sink has them all. */
async function push(port: number, total: number, arrived: Promise<void>): Promise<number> {
  const sock = connect(port, "127.0.0.1");
  await new Promise<void>((r, j) => { sock.once("connect", () => r()); sock.once("error", j); });
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  const start = performance.now();
  for (let sent = 0; sent < total; sent += CHUNK) {
    if (!sock.write(chunk)) await new Promise<void>((r) => sock.once("drain", () => r()));
  }
  await arrived;
  const seconds = (performance.now() - start) / 1000;
  sock.destroy();
  return seconds;
}

export async function portForward({ quick }: Options): Promise<Result[]> {
  const total = (quick ? 32 : 256) * MiB;
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-forward-"));
  const target = await sink();
  const config = join(dir, "lab.yaml");
  writeFileSync(config, `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: forward-bench
export:
  net:
    type: TcpNetwork
    config:
      host: 127.0.0.1
      port: ${target.port}
`);
  const proc = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", "exec j net forward-tcp"], {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
  });
  try {
    // The first line forward-tcp prints is the address to connect to.
    let out = "";
    const reader = proc.stdout.getReader();
    while (!/127\.0\.0\.1:(\d+)\n/.test(out)) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`j net forward-tcp exited before printing its address: ${await new Response(proc.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    const forwardPort = Number(/127\.0\.0\.1:(\d+)\n/.exec(out)![1]);
    // Warm-up through each, as in the stream benchmark.
    await push(forwardPort, 8 * MiB, target.next(8 * MiB));
    await push(target.port, 8 * MiB, target.next(8 * MiB));
    const rounds = quick ? 1 : 3;
    let best = Infinity, bestRaw = Infinity;
    // CPU of this process (source and sink) and of the shell with everything it started.
    const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 + cpuSeconds(proc.pid); };
    let forwardCpu = 0, rawCpu = 0;
    for (let i = 0; i < rounds; i++) {
      let c = cpu();
      best = Math.min(best, await push(forwardPort, total, target.next(total)));
      forwardCpu += cpu() - c;
      c = cpu();
      bestRaw = Math.min(bestRaw, await push(target.port, total, target.next(total)));
      rawCpu += cpu() - c;
    }
    const mbps = (s: number) => total / 1e6 / s;
    const perGiB = (s: number) => s / rounds / (total / 2 ** 30);
    return [
      rate("port forward: j net forward-tcp", mbps(best), mbps(bestRaw), "MB/s", `${total / MiB} MiB one way, best of ${rounds}, local mode; floor = the same into the same sink over raw TCP loopback`),
      cost("port forward: CPU per GiB", perGiB(forwardCpu), perGiB(rawCpu), "s", "CPU seconds of every process involved per GiB; floor = the raw TCP copy's"),
    ];
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    target.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
