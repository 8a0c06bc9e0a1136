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

/** Which way bytes go through a relay: `up` from the connecting side to the target, `down` back. */
export type RelayDirection = "up" | "down" | "both";

/**
 * What a relay does to the bytes of one direction: `pass` them; `pause` (stop
 * reading, so TCP flow control stalls the sender, and deliver everything on the
 * next `pass`); `drop` them silently, and a close too (a pulled cable: each end
 * has to find out for itself); or `delay` each chunk by `ms`, in order.
 */
export type RelayFault = "pass" | "pause" | "drop" | { delayMs: number };

export interface TcpRelay {
  /** HOST:PORT to connect to instead of the target. */
  endpoint: string;
  /** Connections relayed so far. */
  connections(): number;
  /** Connections open now. */
  open(): number;
  /** Every connection open now goes silent: bytes are dropped both ways and nothing is closed, as with a pulled cable. New connections pass. */
  blackhole(): void;
  /**
   * From now on `fault` applies to `direction` (default both) of every open
   * connection and, unless `onlyOpen`, of every new one, until another call
   * changes it: `set("pass")` heals the link.
   */
  set(fault: RelayFault, opts?: { direction?: RelayDirection; onlyOpen?: boolean }): void;
  /** Resets every open connection (TCP RST both ways), as a crashed middlebox or a NAT that forgot them. */
  reset(): number;
  close(): Promise<void>;
}

interface RelayLeg {
  from: net.Socket;
  to: net.Socket;
  fault: RelayFault;
  /** When the last delayed chunk of this leg goes out: later chunks never overtake it. */
  due: number;
}

/** Applies a leg's fault: reading resumes only where bytes are passed, dropped or delayed. */
function applyFault(leg: RelayLeg, fault: RelayFault): void {
  leg.fault = fault;
  if (fault === "pause") leg.from.pause();
  else leg.from.resume();
}

function forward(leg: RelayLeg, chunk: Buffer): void {
  const fault = leg.fault;
  if (fault === "drop") return;
  if (typeof fault === "object") {
    const now = performance.now();
    leg.due = Math.max(now + fault.delayMs, leg.due);
    setTimeout(() => leg.to.destroyed || leg.to.write(chunk), leg.due - now);
    return;
  }
  // "pass", or bytes read before a pause took effect: they were in flight already.
  leg.to.write(chunk);
}

/** A TCP relay on 127.0.0.1 to `target` (HOST:PORT) that can fail the way networks do. */
export async function tcpRelay(target: string): Promise<TcpRelay> {
  const at = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, at), Number(target.slice(at + 1))];
  const open = new Set<{ up: RelayLeg; down: RelayLeg }>();
  const fresh: { up: RelayFault; down: RelayFault } = { up: "pass", down: "pass" };
  let count = 0;
  const server = net.createServer((client) => {
    count += 1;
    const upstream = net.connect(port, host);
    const link = {
      up: { from: client, to: upstream, fault: "pass" as RelayFault, due: 0 },
      down: { from: upstream, to: client, fault: "pass" as RelayFault, due: 0 },
    };
    open.add(link);
    applyFault(link.up, fresh.up);
    applyFault(link.down, fresh.down);
    for (const leg of [link.up, link.down]) {
      leg.from.on("data", (d: Buffer) => forward(leg, d));
      leg.from.on("error", () => {});
      leg.from.on("close", () => {
        if (leg.fault !== "drop") leg.to.destroy();
        if (link.up.from.destroyed && link.down.from.destroyed) open.delete(link);
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const legs = (direction: RelayDirection) => [...open].flatMap((l) => (direction === "both" ? [l.up, l.down] : [l[direction]]));
  return {
    endpoint: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => count,
    open: () => open.size,
    blackhole: () => {
      for (const leg of legs("both")) applyFault(leg, "drop");
    },
    set: (fault, opts = {}) => {
      const direction = opts.direction ?? "both";
      for (const leg of legs(direction)) applyFault(leg, fault);
      if (opts.onlyOpen) return;
      if (direction !== "down") fresh.up = fault;
      if (direction !== "up") fresh.down = fault;
    },
    reset: () => {
      const n = open.size;
      for (const link of open) for (const s of [link.up.from, link.down.from]) s.resetAndDestroy();
      return n;
    },
    close: () => {
      for (const link of open) for (const s of [link.up.from, link.down.from]) s.destroy();
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
