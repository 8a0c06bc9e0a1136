/**
 * The whole data path of distributed mode without a controller: a tunnel socket,
 * a real router over TLS, and an exporter session whose side is piped into the
 * router as the agent does for each Listen message.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import type { MockPower } from "../../drivers/power/driver.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { Logger } from "../common/log.ts";
import { pipeSocketThroughRouter } from "../common/router-pipe.ts";
import type { TlsSettings } from "../common/tls.ts";
import { buildDriverTree } from "../driver/build.ts";
import { readAll } from "../driver/byte-stream.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import { sessionConnection } from "./transport.ts";
import { ConnectPortal } from "../driver/portal.ts";
import { serveRoutes, type Served } from "../exporter/serve.ts";
import { ExporterSession } from "../exporter/session.ts";
import { type RunningRouter, runRouter } from "../router/run.ts";
import { openTunnel, type Tunnel } from "./tunnel.ts";

let dir: string;
let router: RunningRouter;
let trust: TlsSettings;
let session: ExporterSession;
let sessionServer: Served;
let sessionSocket: string;
const exporterPipes: Promise<void>[] = [];
const routerLog: string[] = [];

/** A self-signed certificate for 127.0.0.1, trusted by the test as its own CA. */
function selfSigned(where: string): { cert: string; key: string } {
  const r = Bun.spawnSync([
    "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", join(where, "key.pem"), "-out", join(where, "cert.pem"), "-days", "1", "-subj", "/CN=jmp-test-router",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  return { cert: readFileSync(join(where, "cert.pem"), "utf8"), key: readFileSync(join(where, "key.pem"), "utf8") };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-tunnel-test-"));
  const pem = selfSigned(dir);
  trust = { ca: pem.cert };
  router = await runRouter({
    listen: { host: "127.0.0.1", port: 0 },
    tls: pem,
    verify: async (token) => {
      if (!token.startsWith("ok.")) throw new Error("not signed by this controller");
      return { subject: token.slice(3), lease: "lease-e2e" };
    },
    pairTimeoutMs: 2000,
    log: new Logger("router", (r) => routerLog.push(r.message)),
  });
  const config = parseExporterConfig({ export: { power: { type: "MockPower" }, echo: { type: "EchoNetwork" } } }, "e2e.yaml");
  session = new ExporterSession({ root: buildDriverTree(config, new DriverCatalog(BUILTIN_DRIVERS)) });
  sessionSocket = join(dir, "session.sock");
  sessionServer = await serveRoutes(session, { unix: sessionSocket });
});

afterAll(async () => {
  await router?.close();
  await sessionServer?.close();
  await session?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * What the controller and the exporter agent do for one Dial: mint a token, hand
 * it to the exporter (which pipes a fresh session connection into the router)
 * and return it to the client.
 */
let dials = 0;
async function dial(): Promise<{ endpoint: string; token: string }> {
  dials += 1;
  const token = `ok.${crypto.randomUUID()}`;
  const conn = net.connect({ path: sessionSocket, allowHalfOpen: true });
  exporterPipes.push(pipeSocketThroughRouter(conn, { endpoint: router.address, token, tls: trust }).catch(() => {}));
  return { endpoint: router.address, token };
}

function portalOver(tunnel: Tunnel): ConnectPortal {
  return new ConnectPortal(sessionConnection({ host: tunnel.socketPath }));
}

async function uuidOf(portal: ConnectPortal, name: string): Promise<string> {
  const report = await portal.getReport();
  const found = report.reports.find((r) => r.labels["jumpstarter.dev/name"] === name);
  if (!found) throw new Error(`no driver named ${name}`);
  return found.uuid;
}

describe("tunnel through a router", () => {
  test("driver calls, a streaming call and a byte stream reach the exporter session", async () => {
    const tunnel = await openTunnel({ dial, tls: trust });
    try {
      const portal = portalOver(tunnel);
      const power = await uuidOf(portal, "power");
      await portal.call(power, "on", []);
      expect((session.root.children.power as MockPower).state).toBe("on");
      const readings: unknown[] = [];
      for await (const r of portal.streamingCall(power, "read", [])) readings.push(r);
      expect(readings).toEqual([{ voltage: 0, current: 0 }, { voltage: 5, current: 2 }]);

      // A byte stream nested inside the tunnel: 1 MiB through the echo driver and back.
      const echo = await portal.openStream({ kind: "driver", uuid: await uuidOf(portal, "echo"), method: "connect" });
      const sent = new Uint8Array(1 << 20).map((_, i) => (i * 7) % 251);
      const writer = echo.writable.getWriter();
      const back = readAll(echo.readable);
      for (let i = 0; i < sent.length; i += 16384) await writer.write(sent.subarray(i, i + 16384));
      await writer.close();
      expect(Buffer.compare(Buffer.from(await back), Buffer.from(sent))).toBe(0);
      expect(routerLog.some((l) => l.endsWith("paired"))).toBe(true);
    } finally {
      await tunnel.close();
    }
  });

  test("eight connections at once, each dialled separately", async () => {
    const tunnel = await openTunnel({ dial, tls: trust });
    try {
      const before = dials;
      const portals = Array.from({ length: 8 }, () => portalOver(tunnel));
      const power = await uuidOf(portals[0]!, "power");
      const results = await Promise.all(portals.map(async (p, i) => {
        await p.call(power, i % 2 ? "on" : "off", []);
        let n = 0;
        for await (const _ of p.streamingCall(power, "read", [])) n++;
        return n;
      }));
      expect(results).toEqual(Array(8).fill(2));
      expect(dials - before).toBe(8);
    } finally {
      await tunnel.close();
    }
  });

  test("a connection that cannot be dialled is closed and reported; the tunnel keeps working", async () => {
    const errors: Error[] = [];
    let refuse = true;
    const tunnel = await openTunnel({
      dial: async () => {
        if (refuse) throw new Error("lease expired");
        return dial();
      },
      tls: trust,
      onError: (e) => errors.push(e),
    });
    try {
      const bad = portalOver(tunnel);
      await expect(bad.getReport()).rejects.toThrow();
      expect(errors.map((e) => e.message)).toEqual(["lease expired"]);
      refuse = false;
      const good = portalOver(tunnel);
      expect((await good.getReport()).reports.length).toBe(3);
    } finally {
      await tunnel.close();
    }
  });

  test("a token the router refuses fails that connection with Unauthenticated", async () => {
    const errors: Error[] = [];
    const tunnel = await openTunnel({
      dial: async () => ({ endpoint: router.address, token: "forged" }),
      tls: trust,
      onError: (e) => errors.push(e),
    });
    try {
      await expect(portalOver(tunnel).getReport()).rejects.toThrow();
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error & { code?: Code }).code).toBe(Code.Unauthenticated);
      expect(errors[0]!.message).toContain("invalid router token: not signed by this controller");
    } finally {
      await tunnel.close();
    }
  });

  test("a router with an untrusted certificate is refused", async () => {
    const errors: Error[] = [];
    const tunnel = await openTunnel({ dial, tls: {}, onError: (e) => errors.push(e) });
    try {
      await expect(portalOver(tunnel).getReport()).rejects.toThrow();
      expect(errors[0]?.message ?? "").toMatch(/certificate|self.signed|verify/i);
    } finally {
      await tunnel.close();
    }
  });

  test("close removes the socket and its private directory", async () => {
    const tunnel = await openTunnel({ dial, tls: trust, socketDir: dir });
    const { statSync, existsSync } = await import("node:fs");
    const parent = join(tunnel.socketPath, "..");
    expect(statSync(parent).mode & 0o777).toBe(0o700);
    await tunnel.close();
    expect(existsSync(parent)).toBe(false);
  });
});
