/**
 * Debian's mosquitto for tests: a real MQTT broker on a free port of 127.0.0.1,
 * with its own config in a temporary folder (optionally users with passwords, a
 * websockets listener and a Unix socket). It can be stopped and started again on
 * the same port, to test reconnecting.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../../src/api/eventually.ts";

export interface Mosquitto {
  port: number;
  wsPort?: number;
  socket?: string;
  /** A process is running. */
  running(): boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

export const mosquittoMissing = Bun.which("mosquitto") || Bun.which("/usr/sbin/mosquitto") ? undefined : "mosquitto is not installed (apt-get install -y mosquitto)";

export async function startMosquitto(opts: { users?: Record<string, string>; websockets?: boolean; unix?: boolean } = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-mosquitto-"));
  const port = await freePort();
  const wsPort = opts.websockets ? await freePort() : undefined;
  const socket = opts.unix ? join(dir, "broker.sock") : undefined;
  const lines = [
    // Started as root, mosquitto would become user "mosquitto", which cannot use our folder; as anyone else it stays who it is.
    ...(process.getuid?.() === 0 ? ["user root"] : []),
    "persistence false",
    "log_dest stderr",
    "log_type error",
    `listener ${port} 127.0.0.1`,
    ...(wsPort ? [`listener ${wsPort} 127.0.0.1`, "protocol websockets"] : []),
    ...(socket ? [`listener 0 ${socket}`] : []),
  ];
  if (opts.users) {
    const file = join(dir, "passwords");
    writeFileSync(file, "");
    for (const [user, password] of Object.entries(opts.users)) {
      const made = Bun.spawnSync(["mosquitto_passwd", "-b", file, user, password], { stderr: "pipe" });
      if (made.exitCode !== 0) throw new Error(`mosquitto_passwd failed: ${made.stderr.toString()}`);
    }
    lines.push("allow_anonymous false", `password_file ${file}`);
  } else {
    lines.push("allow_anonymous true");
  }
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, lines.join("\n") + "\n");
  const exe = Bun.which("mosquitto") ?? "/usr/sbin/mosquitto";

  let proc: ReturnType<typeof Bun.spawn> | undefined;
  let stderr = "";
  const start = async () => {
    stderr = "";
    const p = Bun.spawn([exe, "-c", conf], { stdout: "ignore", stderr: "pipe" });
    proc = p;
    void (async () => {
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) stderr += new TextDecoder().decode(chunk);
    })();
    const died = new AbortController();
    void p.exited.then((code) => died.abort(new Error(`mosquitto exited with ${code}: ${stderr}`)));
    await eventually(() => accepts(port), { what: `mosquitto to listen on 127.0.0.1:${port}`, signal: died.signal, interval: 20 });
  };
  const stop = async () => {
    if (!proc) return;
    proc.kill("SIGTERM");
    await proc.exited;
    proc = undefined;
  };
  await start();
  return {
    port,
    wsPort,
    socket,
    running: () => proc !== undefined && proc.exitCode === null,
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function accepts(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve();
    });
    s.once("error", (e) => reject(new Error(`nothing accepts on 127.0.0.1:${port} (${e.message})`)));
  });
}
