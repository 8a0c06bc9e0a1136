/**
 * The exporter agent: a lease's sessions end to end through a real router (the
 * Listen message is played by the test's dial), the agent's behaviour while no
 * controller answers, and through restarts of a stand-in controller that leave
 * its streams without a status.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import type { MockPower } from "../../drivers/power/driver.ts";
import { eventually } from "../common/eventually.ts";
import { ConfigError } from "../common/errors.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { Logger } from "../common/log.ts";
import type { TlsSettings } from "../common/tls.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import { Driver } from "../driver/driver.ts";
import { callSignal, exported } from "../driver/index.ts";
import { sessionConnection } from "../client/transport.ts";
import { ConnectPortal } from "../driver/portal.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import type { RunningRouter } from "../router/run.ts";
import { startTestRouter, throwawayCert, type TestRouter } from "../router/test-router.ts";
import { LeaseSession, runAgent } from "./agent.ts";
import { tunnelToLease } from "../testing/lease-tunnel.ts";

/** Counts how many instances were built and closed, to see fresh drivers per session. */
class Tracked extends Driver {
  static override readonly client = "jumpstarter_driver_composite.client.CompositeClient";
  static built = 0;
  static closed = 0;
  /** While set, closing waits for it: holds a lease between its client's EndSession and the fresh session. */
  static closeGate?: Promise<void>;
  constructor(config: Record<string, unknown>) {
    super(config);
    Tracked.built += 1;
  }
  override async close(): Promise<void> {
    await Tracked.closeGate;
    Tracked.closed += 1;
  }
  /** A streaming call that runs until its call is ended. */
  @exported async *forever() {
    yield "started";
    const signal = callSignal();
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  }
}

const catalog = new DriverCatalog([...BUILTIN_DRIVERS, { name: "Tracked", types: ["Tracked"], driver: Tracked, source: "test" }]);
const config = parseExporterConfig({
  metadata: { namespace: "default", name: "pi-1" },
  export: { power: { type: "MockPower" }, tracked: { type: "Tracked" } },
}, "agent-test.yaml");

let router: RunningRouter;
let trust: TlsSettings;
const logs: string[] = [];
const log = new Logger("exporter", (r) => logs.push(`${r.level}: ${r.message}`));

let testRouter: TestRouter;

beforeAll(async () => {
  testRouter = await startTestRouter("L");
  router = testRouter.router;
  trust = testRouter.trust;
});

afterAll(async () => {
  await testRouter?.close();
});

function portalAt(path: string): ConnectPortal {
  return new ConnectPortal(sessionConnection({ host: path }));
}

async function powerUuid(portal: ConnectPortal): Promise<string> {
  const report = await portal.getReport();
  return report.reports.find((r) => r.labels["jumpstarter.dev/name"] === "power")!.uuid;
}

describe("LeaseSession", () => {
  test("through the router: calls reach fresh drivers, EndSession frees them, the lease can be used again", async () => {
    const statuses: ExporterStatus[] = [];
    const builtBefore = Tracked.built;
    const closedBefore = Tracked.closed;
    const lease = await LeaseSession.start({
      name: "L", config, catalog, tls: trust, log,
      onStatus: (s) => statuses.push(s),
    });
    expect(Tracked.built - builtBefore).toBe(1);
    const tunnel = await tunnelToLease(lease, router.address, trust);
    try {
      const first = portalAt(tunnel.socketPath);
      expect((await first.getStatus()).status).toBe(ExporterStatus.LEASE_READY);
      await first.call(await powerUuid(first), "on", []);
      const firstSession = lease.session;

      // The client ends its session and, on its open connection, waits for AVAILABLE.
      await first.exporter.endSession({});
      await eventually(async () => expect((await first.getStatus()).status).toBe(ExporterStatus.AVAILABLE), { what: "the session to say AVAILABLE", interval: 20 });
      await eventually(() => expect(statuses).toHaveLength(2), { what: "two status reports", interval: 20 });
      expect(statuses).toEqual([ExporterStatus.AVAILABLE, ExporterStatus.LEASE_READY]);
      expect(Tracked.closed - closedBefore).toBe(1);
      expect(logs).toContain("info: lease L: the client ended its session; drivers closed");

      // A second client on the same lease gets a fresh session with fresh drivers.
      const second = portalAt(tunnel.socketPath);
      expect((await second.getStatus()).status).toBe(ExporterStatus.LEASE_READY);
      expect(lease.session).not.toBe(firstSession);
      expect((lease.session.root.children.power as MockPower).state).toBe("off");
      expect(Tracked.built - builtBefore).toBe(2);
      await second.call(await powerUuid(second), "on", []);
      expect((lease.session.root.children.power as MockPower).state).toBe("on");
    } finally {
      await tunnel.close();
      await lease.close();
    }
    expect(Tracked.closed - closedBefore).toBe(2);
  });

  test("a client that connects while the previous one ends its session gets the fresh session, LEASE_READY and working", async () => {
    const statuses: ExporterStatus[] = [];
    const lease = await LeaseSession.start({ name: "L3", config, catalog, tls: trust, log, onStatus: (s) => statuses.push(s) });
    let dials = 0;
    const tunnel = await tunnelToLease(lease, router.address, trust, { onDial: () => (dials += 1) });
    let open!: () => void;
    Tracked.closeGate = new Promise((r) => (open = r));
    try {
      const first = portalAt(tunnel.socketPath);
      await first.call(await powerUuid(first), "on", []);
      const firstSession = lease.session;
      await first.exporter.endSession({});
      // The old drivers are still closing (the gate) when the second client dials.
      const second = portalAt(tunnel.socketPath);
      const status = second.getStatus();
      await eventually(() => expect(dials).toBe(2), { what: "the second dial", interval: 10 });
      open();
      expect((await status).status).toBe(ExporterStatus.LEASE_READY);
      expect(lease.session).not.toBe(firstSession);
      await second.call(await powerUuid(second), "on", []);
      expect((lease.session.root.children.power as MockPower).state).toBe("on");
      await eventually(() => expect(statuses).toHaveLength(2), { what: "two status reports", interval: 20 });
      expect(statuses).toEqual([ExporterStatus.AVAILABLE, ExporterStatus.LEASE_READY]);
    } finally {
      Tracked.closeGate = undefined;
      open();
      await tunnel.close();
      await lease.close();
    }
  });

  test("close ends the lease's connections, closes its drivers and removes its sockets", async () => {
    const closedBefore = Tracked.closed;
    const lease = await LeaseSession.start({ name: "L2", config, catalog, tls: trust, log, onStatus: () => {} });
    const errors: Error[] = [];
    const tunnel = await tunnelToLease(lease, router.address, trust, { onError: (e) => errors.push(e) });
    const portal = portalAt(tunnel.socketPath);
    await portal.call(await powerUuid(portal), "on", []);
    const socketDir = join(lease.socketPath, "..");
    // A streaming call, under way when the lease ends, that would otherwise run for ever.
    const tracked = (await portal.getReport()).reports.find((r) => r.labels["jumpstarter.dev/name"] === "tracked")!.uuid;
    const reading = portal.streamingCall(tracked, "forever", [])[Symbol.asyncIterator]();
    expect((await reading.next()).value).toBe("started");
    const ended = reading.next().then(() => undefined, (e: unknown) => e);
    await lease.close();
    expect(await ended).toBeInstanceOf(Error);
    expect(Tracked.closed - closedBefore).toBe(1);
    expect(existsSync(socketDir)).toBe(false);
    await tunnel.close();
  });
});

describe("runAgent without a controller", () => {
  test("keeps retrying an unreachable controller with growing delays and stops cleanly on the signal", async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const agent = runAgent({
      config,
      catalog,
      connect: { endpoint: "127.0.0.1:1", token: "t", namespace: "default", name: "pi-1", tls: trust },
      log: new Logger("exporter", (r) => lines.push(r.message)),
      signal: stop.signal,
      backoff: { initialMs: 50, maxMs: 200, random: () => 0.5 },
    });
    await eventually(() => expect(lines.filter((l) => l.startsWith("controller unreachable")).length).toBeGreaterThanOrEqual(3), { what: "three retries", interval: 20 });
    const retries = lines.filter((l) => l.startsWith("controller unreachable"));
    expect(retries[0]).toMatch(/^controller unreachable \(.*\); retrying in 0\.1s$/);
    expect(retries[1]).toEndWith("retrying in 0.1s");
    expect(retries[2]).toEndWith("retrying in 0.2s");
    stop.abort("SIGTERM");
    await agent.done;
    expect(lines).toContain("stopping: SIGTERM");
    // Never registered, so nothing to unregister.
    expect(lines.some((l) => l.includes("unregister"))).toBe(false);
  });

  test("finishLeaseThenStop with no lease stops at once", async () => {
    const lines: string[] = [];
    const agent = runAgent({
      config,
      catalog,
      connect: { endpoint: "127.0.0.1:1", token: "t", namespace: "default", name: "pi-1", tls: trust },
      log: new Logger("exporter", (r) => lines.push(r.message)),
      backoff: { initialMs: 10_000 },
    });
    await eventually(() => expect(lines.some((l) => l.startsWith("controller unreachable"))).toBe(true), { what: "the first attempt", interval: 20 });
    agent.finishLeaseThenStop();
    await agent.done;
    expect(lines).toContain("stopping: asked to stop (no lease in progress)");
  });

  test("a config mistake fails before any connection is tried", async () => {
    const bad = parseExporterConfig({ export: { power: { type: "MockPowr" } } }, "bad.yaml");
    const agent = runAgent({
      config: bad,
      catalog,
      connect: { endpoint: "127.0.0.1:1", token: "t", namespace: "default", name: "pi-1", tls: trust },
      log: new Logger("exporter", () => {}),
    });
    const e = await agent.done.catch((e: unknown) => e);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toContain("bad.yaml: export.power.type: unknown driver type 'MockPowr'");
  });
});

/**
 * A controller stand-in on a fixed port that has leased "L" to the exporter and
 * records each Listen. `stop()` goes away as a controller did on SIGTERM: every
 * connection dropped, no stream given a status; `start()` comes back on the same port.
 */
class StandInController {
  readonly listens: string[] = [];
  readonly registers: number[] = [];
  private server?: http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly pem = throwawayCert();
  port = 0;

  get trust(): TlsSettings {
    return this.pem.trust;
  }

  async start(): Promise<void> {
    const { listens, registers } = this;
    const server = http2.createSecureServer({ cert: this.pem.cert, key: this.pem.key }, connectNodeAdapter({
      routes: (r) => r.service(ControllerService, {
        register: () => {
          registers.push(Date.now());
          return { uuid: "u-1" };
        },
        reportStatus: () => ({}),
        unregister: () => ({}),
        status: async function* (_req, ctx) {
          yield { leased: true, leaseName: "L", clientName: "c" };
          await new Promise((r) => ctx.signal.addEventListener("abort", r));
        },
        listen: async function* (req, ctx) {
          listens.push(req.leaseName);
          await new Promise((r) => ctx.signal.addEventListener("abort", r));
        },
      }),
    }));
    server.on("session", (s) => {
      this.sessions.add(s);
      s.on("close", () => this.sessions.delete(s));
    });
    await new Promise<void>((r) => server.listen(this.port, "127.0.0.1", r));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

describe("runAgent through controller restarts", () => {
  test("a controller that went away leaving no status: the agent registers again and listens again for its lease", async () => {
    const controller = new StandInController();
    await controller.start();
    const lines: string[] = [];
    const stop = new AbortController();
    const agent = runAgent({
      config,
      catalog,
      connect: { endpoint: `127.0.0.1:${controller.port}`, token: "t", namespace: "default", name: "pi-1", tls: controller.trust },
      log: new Logger("exporter", (r) => lines.push(`${r.level}: ${r.message}`)),
      signal: stop.signal,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    try {
      await eventually(() => expect(controller.listens).toHaveLength(1), { what: "the first Listen", interval: 20 });
      for (let restart = 1; restart <= 3; restart++) {
        await controller.stop();
        await controller.start();
        const back = performance.now();
        await eventually(() => expect(controller.listens).toHaveLength(restart + 1), { what: `Listen after restart ${restart}`, interval: 20 });
        expect(performance.now() - back).toBeLessThan(3000);
        expect(controller.registers).toHaveLength(restart + 1);
      }
      expect(controller.listens).toEqual(["L", "L", "L", "L"]);
      // The lease's session lived on through all of it.
      expect(lines.filter((l) => l.includes("lease L: ready"))).toHaveLength(1);
    } finally {
      stop.abort("SIGTERM");
      await agent.done;
      await controller.stop();
    }
  });
});
