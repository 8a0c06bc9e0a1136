/**
 * Byte stream through the router: EchoNetwork's `connect` stream carrying N MiB
 * out and the same N MiB back, vs. a raw TCP loopback echo in the same run.
 * Also samples the exporter's RSS while the bytes flow.
 */
import { createServer, connect, type Socket } from "node:net";
import type { ByteStream } from "../src/driver/index.ts";
import { throwawayCert } from "../src/router/test-router.ts";
import type { BenchLab } from "./lab.ts";
import { tlsRelayEcho } from "./tls-relay.ts";
import { MiB, cost, cpuSeconds, echoOver, rate, rssMiB, type Options, type Result } from "./lib.ts";

const CHUNK = 256 * 1024;

/** Writes `total` bytes into the stream while reading them back; resolves to the seconds taken. */
async function echoThrough(stream: ByteStream, total: number): Promise<number> {
  const chunk = new Uint8Array(CHUNK).fill(0x5a);
  const start = performance.now();
  const writing = (async () => {
    const w = stream.writable.getWriter();
    for (let sent = 0; sent < total; sent += CHUNK) await w.write(chunk);
    await w.close();
  })();
  let got = 0;
  for await (const part of stream.readable) {
    got += part.byteLength;
    if (got >= total) break;
  }
  await writing;
  if (got < total) throw new Error(`echo stream ended after ${got} of ${total} bytes`);
  return (performance.now() - start) / 1000;
}

/** The same over a plain TCP socket pair on loopback (the server pipes every byte back). */
async function tcpEcho(total: number): Promise<number> {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  const sock: Socket = connect(port, "127.0.0.1");
  await new Promise<void>((r) => sock.once("connect", () => r()));
  const seconds = await echoOver(sock, total);
  sock.destroy();
  server.close();
  return seconds;
}

export async function byteStream({ quick }: Options, lab: BenchLab): Promise<Result[]> {
  const total = (quick ? 32 : 1024) * MiB;
  // A few MiB first through each: the first megabytes run while the JIT and the socket buffers warm up.
  await echoThrough(await lab.board.echo.connect(), 8 * MiB);
  await tcpEcho(8 * MiB);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(lab.exporter.pid))), 100);
  const idle = rssMiB(lab.exporter.pid);
  // CPU of every process the bytes cross (this one, the router, the exporter and
  // its worker): on a shared 2-core machine this is steadier than MB/s, and it is
  // what bounds MB/s once the cores are busy.
  const cpu = () => process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 + cpuSeconds(lab.lab.controller.pid) + cpuSeconds(lab.exporter.pid);
  const cpuBefore = cpu();
  let seconds: number;
  try {
    seconds = await echoThrough(await lab.board.echo.connect(), total);
  } finally {
    clearInterval(sampler);
  }
  const streamCpu = cpu() - cpuBefore;
  peak = Math.max(peak, rssMiB(lab.exporter.pid));
  const floorCpuBefore = process.cpuUsage();
  const floorSeconds = await tcpEcho(total);
  const floorUsage = process.cpuUsage(floorCpuBefore);
  const floorCpu = (floorUsage.user + floorUsage.system) / 1e6;
  const { cert, key } = throwawayCert();
  const relay = await tlsRelayEcho(total, cert, key, cpuSeconds);
  const perGiB = (s: number) => s / (total / 2 ** 30);
  const mbps = (s: number) => total / 1e6 / s;
  return [
    rate("stream via router, each way", mbps(seconds), mbps(floorSeconds), "MB/s", `${total / MiB} MiB out and back at once; floor = raw TCP loopback echo`),
    cost("stream via router, CPU per GiB", perGiB(streamCpu), perGiB(floorCpu), "s", "CPU seconds of client, router and exporter per GiB each way; floor = the TCP echo's"),
    rate("stream via router vs bare TLS relay", mbps(seconds), mbps(relay.seconds), "MB/s", "floor = node:tls sockets only, client -> relay -> echo in three processes (bench/tls-relay.ts): the same two TLS connections as client-router-exporter, without HTTP/2 or jmp"),
    cost("stream via router vs bare TLS relay, CPU per GiB", perGiB(streamCpu), perGiB(relay.cpu), "s", "CPU seconds of all three processes per GiB each way, the same relay as the floor"),
    cost("exporter RSS during stream", peak, idle, "MiB", "peak while streaming, exporter and its session process; floor = the same just before"),
  ];
}
