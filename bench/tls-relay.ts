/**
 * The floor for a byte stream through a router: bare TLS sockets (node:tls, as
 * jmp's router and pipes use) from this process to a relay process, which opens
 * TLS to an echo process and copies both ways — the same three processes and the
 * same two TLS connections as the client, the router and the exporter (a byte
 * crosses four TLS reads or writes each way), with no HTTP/2, no gRPC, no jmp code.
 * Whatever carries jmp's stream pays at least this.
 *
 * As a child: `bun bench/tls-relay.ts echo|relay CERT KEY [TARGET_PORT]` prints
 * its port and serves until killed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { echoOver, MiB } from "./lib.ts";

function serve(role: string, cert: string, key: string, target?: number): void {
  const server = tls.createServer({ cert, key }, (socket) => {
    socket.on("error", () => {});
    if (role === "echo") return void socket.pipe(socket);
    const out = tls.connect({ host: "127.0.0.1", port: target!, ca: cert });
    out.on("error", () => socket.destroy());
    socket.pipe(out).pipe(socket);
  });
  server.listen(0, "127.0.0.1", () => console.log((server.address() as { port: number }).port));
}

async function child(args: string[]): Promise<{ port: number; kill(): void; pid: number }> {
  const proc = Bun.spawn([process.execPath, import.meta.path, ...args], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench/tls-relay.ts ${args[0]} exited before it listened`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { port: Number(text.trim()), pid: proc.pid, kill: () => proc.kill() };
}

/**
 * Sends `total` bytes through relay and echo and reads them back, at once; the
 * seconds taken and the CPU seconds of all three processes. `cert` must name
 * 127.0.0.1 (throwawayCert's does).
 */
export async function tlsRelayEcho(total: number, cert: string, key: string, cpuOf: (pid: number) => number): Promise<{ seconds: number; cpu: number }> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-tls-"));
  writeFileSync(join(dir, "cert.pem"), cert);
  writeFileSync(join(dir, "key.pem"), key);
  const echo = await child(["echo", join(dir, "cert.pem"), join(dir, "key.pem")]);
  const relay = await child(["relay", join(dir, "cert.pem"), join(dir, "key.pem"), String(echo.port)]);
  try {
    const run = async (bytes: number) => {
      const socket = tls.connect({ host: "127.0.0.1", port: relay.port, ca: cert });
      await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
      const seconds = await echoOver(socket, bytes);
      socket.destroy();
      return seconds;
    };
    await run(8 * MiB); // warm-up, as the stream's own run has
    const self = process.cpuUsage();
    const others = cpuOf(echo.pid) + cpuOf(relay.pid);
    const seconds = await run(total);
    const used = process.cpuUsage(self);
    const cpu = (used.user + used.system) / 1e6 + cpuOf(echo.pid) + cpuOf(relay.pid) - others;
    return { seconds, cpu };
  } finally {
    echo.kill();
    relay.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const [role, certFile, keyFile, target] = process.argv.slice(2);
  if ((role !== "echo" && role !== "relay") || !certFile || !keyFile) {
    console.error("usage: bun bench/tls-relay.ts echo|relay CERT KEY [TARGET_PORT]");
    process.exit(2);
  }
  serve(role, readFileSync(certFile, "utf8"), readFileSync(keyFile, "utf8"), target ? Number(target) : undefined);
}
