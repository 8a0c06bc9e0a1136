/**
 * For tests: a real TLS router on 127.0.0.1 with a throwaway certificate (made by
 * openssl) that accepts any token as its own stream subject, the certificate
 * alone for tests that stand up a peer of their own, and network faults on the
 * way to a router or a controller.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "../common/log.ts";
import type { TlsSettings } from "../common/tls.ts";
import { type RunningRouter, runRouter } from "./run.ts";

export interface TestRouter {
  router: RunningRouter;
  /** What a client needs to trust the router's certificate. */
  trust: TlsSettings;
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1, and the trust a client needs for it. */
export function throwawayCert(): { cert: string; key: string; trust: TlsSettings } {
  const dir = mkdtempSync(join(tmpdir(), "jmp-test-cert-"));
  try {
    const r = Bun.spawnSync([
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=jmp-test-router",
      "-addext", "subjectAltName=IP:127.0.0.1",
    ], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`);
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    return { cert, key: readFileSync(join(dir, "key.pem"), "utf8"), trust: { ca: cert } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startTestRouter(lease = "test-lease"): Promise<TestRouter> {
  const { cert, key, trust } = throwawayCert();
  const router = await runRouter({
    listen: { host: "127.0.0.1", port: 0 },
    tls: { cert, key },
    verify: async (token) => ({ subject: token, lease }),
    log: new Logger("router", () => {}),
  });
  return { router, trust, close: () => router.close() };
}

export interface TcpRelay {
  /** HOST:PORT to connect to instead of the target. */
  endpoint: string;
  /** Connections relayed so far. */
  connections(): number;
  /** Every connection open now goes silent: bytes are dropped both ways and nothing is closed, as with a pulled cable. New connections pass. */
  blackhole(): void;
  close(): Promise<void>;
}

/** A TCP relay on 127.0.0.1 to `target` (HOST:PORT) that can fail the way networks do. */
export async function tcpRelay(target: string): Promise<TcpRelay> {
  const at = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, at), Number(target.slice(at + 1))];
  const open = new Set<{ silent: boolean; sockets: net.Socket[] }>();
  let count = 0;
  const server = net.createServer((client) => {
    count += 1;
    const upstream = net.connect(port, host);
    const link = { silent: false, sockets: [client, upstream] };
    open.add(link);
    client.on("data", (d) => link.silent || upstream.write(d));
    upstream.on("data", (d) => link.silent || client.write(d));
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on("error", () => b.destroy());
      a.on("close", () => {
        b.destroy();
        open.delete(link);
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => count,
    blackhole: () => {
      for (const link of open) link.silent = true;
    },
    close: () => {
      for (const link of open) for (const s of link.sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A TCP listener on 127.0.0.1 that accepts connections and never says a word: a hung process, a wrong port. */
export async function silentListener(): Promise<{ endpoint: string; accepted(): number; close(): Promise<void> }> {
  const held: net.Socket[] = [];
  const server = net.createServer((s) => held.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    accepted: () => held.length,
    close: () => {
      for (const s of held) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
