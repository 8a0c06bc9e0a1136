/**
 * Debian's mosquitto for tests: a real MQTT broker on a free port of 127.0.0.1,
 * with its own config in a temporary folder (optionally users with passwords, a
 * websockets listener and a Unix socket). It can be stopped and started again on
 * the same port, to test reconnecting.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../../src/common/eventually.ts";
import { freePort } from "../../test/helpers.ts";

export interface Mosquitto {
  port: number;
  /** A TLS listener, with a self-signed certificate for 127.0.0.1 (its own CA) in `ca`. */
  tlsPort?: number;
  ca?: string;
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

export async function startMosquitto(opts: { users?: Record<string, string>; websockets?: boolean; unix?: boolean; tls?: boolean } = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-mosquitto-"));
  const port = await freePort();
  const wsPort = opts.websockets ? await freePort() : undefined;
  const socket = opts.unix ? join(dir, "broker.sock") : undefined;
  const tlsPort = opts.tls ? await freePort() : undefined;
  const ca = opts.tls ? selfSigned(dir) : undefined;
  const lines = [
    // Started as root, mosquitto would become user "mosquitto", which cannot use our folder; as anyone else it stays who it is.
    ...(process.getuid?.() === 0 ? ["user root"] : []),
    "persistence false",
    "log_dest stderr",
    "log_type error",
    `listener ${port} 127.0.0.1`,
    ...(wsPort ? [`listener ${wsPort} 127.0.0.1`, "protocol websockets"] : []),
    ...(socket ? [`listener 0 ${socket}`] : []),
    ...(tlsPort ? [`listener ${tlsPort} 127.0.0.1`, `certfile ${ca}`, `keyfile ${join(dir, "key.pem")}`] : []),
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
    tlsPort,
    ca,
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

/** A self-signed certificate for 127.0.0.1, which is its own CA (cert.pem, key.pem in dir); answers the certificate's path. */
function selfSigned(dir: string): string {
  const cert = join(dir, "cert.pem");
  const made = Bun.spawnSync([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-keyout", join(dir, "key.pem"), "-out", cert, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
  ], { stderr: "pipe" });
  if (made.exitCode !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr.toString()}`);
  return cert;
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
