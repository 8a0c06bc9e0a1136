/**
 * A session's server as direct mode and the distributed agent serve it: a close
 * ends the client's open calls with UNAVAILABLE 'the exporter is shutting down'
 * (driver stream, log stream, byte stream), also through a router, and a client
 * that goes silent is dropped by PING, which ends its driver calls.
 */
import { afterEach, expect, test } from "bun:test";
import { BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import { eventually } from "../common/eventually.ts";
import { sessionConnection } from "../client/transport.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { Logger } from "../common/log.ts";
import { buildDriverTree } from "../driver/build.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import { Driver } from "../driver/driver.ts";
import { callSignal, exported } from "../driver/index.ts";
import { ConnectPortal } from "../driver/portal.ts";
import { startTestRouter, tcpRelay } from "../router/test-router.ts";
import { LeaseSession } from "./agent.ts";
import { serveRoutes } from "./serve.ts";
import { ExporterSession } from "./session.ts";
import { tunnelToLease } from "../testing/lease-tunnel.ts";

/** A driver stream that runs until its call ends, and says when that was. */
class Forever extends Driver {
  static override readonly client = "jumpstarter_driver_composite.client.CompositeClient";
  static endedAt: number[] = [];
  @exported async *forever() {
    yield "started";
    const signal = callSignal();
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    Forever.endedAt.push(performance.now());
  }
}

const catalog = new DriverCatalog([...BUILTIN_DRIVERS, { name: "Forever", types: ["Forever"], driver: Forever, source: "test" }]);
const config = parseExporterConfig({
  metadata: { namespace: "default", name: "pi-1" },
  export: { echo: { type: "EchoNetwork" }, forever: { type: "Forever" } },
}, "serve-test.yaml");

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function newSession(): ExporterSession {
  const session = new ExporterSession({ root: buildDriverTree(config, catalog) });
  cleanups.push(() => session.close());
  return session;
}

async function uuidOf(portal: ConnectPortal, name: string): Promise<string> {
  return (await portal.getReport()).reports.find((r) => r.labels["jumpstarter.dev/name"] === name)!.uuid;
}

/** How a pending read ended: "OK", or the error's class and message. */
async function ending(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

/** A driver stream, the log stream and a byte stream, each open and waiting for more: how each read ends. */
async function openCalls(portal: ConnectPortal): Promise<Promise<string>[]> {
  const driverStream = portal.streamingCall(await uuidOf(portal, "forever"), "forever", [])[Symbol.asyncIterator]();
  expect((await driverStream.next()).value).toBe("started");
  const logs = portal.exporter.logStream({})[Symbol.asyncIterator]();
  const byteStream = await portal.openStream({ kind: "driver", uuid: await uuidOf(portal, "echo"), method: "connect" });
  const reader = byteStream.readable.getReader();
  return [driverStream.next(), logs.next(), reader.read()].map(ending);
}

test("direct mode: a close ends the client's driver stream, log stream and byte stream with UNAVAILABLE 'the exporter is shutting down'", async () => {
  const served = await serveRoutes(newSession(), { host: "127.0.0.1", port: 0 });
  const connection = sessionConnection({ host: served.address, insecure: true });
  cleanups.push(() => connection.close());
  const pending = await openCalls(new ConnectPortal(connection));
  const t0 = performance.now();
  await served.close();
  const ms = performance.now() - t0;
  const ends = await Promise.all(pending);
  expect(ends[0]).toBe("UnavailableError: forever: the exporter is shutting down");
  expect(ends[1]).toBe("ConnectError: [unavailable] the exporter is shutting down");
  expect(ends[2]).toBe("UnavailableError: stream connect: the exporter is shutting down");
  console.log(`direct-mode exporter close with 3 open client calls: ${Math.round(ms)} ms`);
  expect(ms).toBeLessThan(1000);
});

test("direct mode: a client whose network goes silent is dropped by PING, which ends its driver stream", async () => {
  const served = await serveRoutes(newSession(), { host: "127.0.0.1", port: 0 }, { keepalive: { intervalMs: 300, timeoutMs: 300 } });
  cleanups.push(() => served.close());
  const relay = await tcpRelay(served.address);
  cleanups.push(() => relay.close());
  const connection = sessionConnection({ host: relay.endpoint, insecure: true });
  cleanups.push(() => connection.close());
  const portal = new ConnectPortal(connection);
  const stream = portal.streamingCall(await uuidOf(portal, "forever"), "forever", [])[Symbol.asyncIterator]();
  expect((await stream.next()).value).toBe("started");
  void stream.next().catch(() => {});
  // PINGs answered meanwhile keep it.
  await Bun.sleep(1000);
  expect(served.openCalls).toBe(1);
  const before = Forever.endedAt.length;
  const t0 = performance.now();
  relay.blackhole();
  await eventually(() => expect(Forever.endedAt.length).toBe(before + 1), { what: "the silent client's driver stream to end", interval: 10, timeout: 5000 });
  const ms = Forever.endedAt.at(-1)! - t0;
  console.log(`silent client dropped, its driver stream ended, after ${Math.round(ms)} ms (PING every 300 ms, 300 ms to answer)`);
  expect(ms).toBeLessThan(300 + 300 + 400);
  expect(served.openCalls).toBe(0);
});

test("distributed: a lease closed under a client ends its calls with UNAVAILABLE 'the exporter is shutting down' through the router", async () => {
  const testRouter = await startTestRouter("L");
  cleanups.push(() => testRouter.close());
  const { router, trust } = testRouter;
  const lease = await LeaseSession.start({ name: "L", config, catalog, tls: trust, log: new Logger("exporter", () => {}), onStatus: () => {} });
  cleanups.push(async () => void (await lease.close()));
  const tunnel = await tunnelToLease(lease, router.address, trust);
  cleanups.push(() => tunnel.close());
  const connection = sessionConnection({ host: tunnel.socketPath });
  cleanups.push(() => connection.close());
  const pending = await openCalls(new ConnectPortal(connection));
  const t0 = performance.now();
  await lease.close();
  console.log(`lease close with 3 open client calls through the router: ${Math.round(performance.now() - t0)} ms`);
  const ends = await Promise.all(pending);
  expect(ends[0]).toBe("UnavailableError: forever: the exporter is shutting down");
  expect(ends[1]).toBe("ConnectError: [unavailable] the exporter is shutting down");
  expect(ends[2]).toBe("UnavailableError: stream connect: the exporter is shutting down");
});
