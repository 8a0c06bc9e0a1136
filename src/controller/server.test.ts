/**
 * The controller in-process on a real TLS port, spoken to over gRPC as exporters and
 * clients do: how it ends its calls when it stops (issue 11, defect 1), how fast it
 * notices an exporter that is gone (defect 8), and the presence metadata of
 * CreateLease (defects 2 and 3).
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService } from "../gen/jumpstarter/admin/v1/admin_pb.ts";
import { ClientService } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { FrameType, RouterService } from "../gen/jumpstarter/v1/router_pb.ts";
import { routerHandler } from "../router/router.ts";
import { outcome } from "../common/call-outcome.ts";
import type { Keepalive } from "../common/remote-connection.ts";
import { PRESENCE_TIMEOUT_HEADER } from "./services/client-service.ts";
import { runController } from "./server.ts";

interface Running {
  dir: string;
  address: string;
  caPem: string;
  stop: AbortController;
  done: Promise<void>;
  admin: Client<typeof AdminService>;
}

const running: Running[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const r of running.splice(0)) {
    r.stop.abort();
    await r.done;
    rmSync(r.dir, { recursive: true, force: true });
  }
});

async function startController(keepalive?: Keepalive): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-server-"));
  const stop = new AbortController();
  let listening!: (address: string) => void;
  const address = new Promise<string>((r) => (listening = r));
  const done = runController({
    dataDir: join(dir, "data"),
    listen: { host: "127.0.0.1", port: 0 },
    advertise: "127.0.0.1:0",
    signal: stop.signal,
    onListening: listening,
    keepalive,
    embeddedRouter: (tokens) => routerHandler({
      verify: async (token) => {
        const g = await tokens.verifyRouterToken(token);
        return { subject: g.streamId, lease: `${g.namespace}/${g.lease}` };
      },
    }),
  });
  const r = { dir, stop, done, address: await Promise.race([address, done.then(() => "")]) } as Running;
  const adminConfig = parse(readFileSync(join(dir, "data", "admin.yaml"), "utf8")) as { token: string; tls: { ca: string } };
  r.caPem = Buffer.from(adminConfig.tls.ca, "base64").toString();
  r.admin = createClient(AdminService, grpc(r, adminConfig.token));
  running.push(r);
  return r;
}

function grpc(r: { address: string; caPem: string }, token: string, opts: { via?: string; headers?: Record<string, string> } = {}): Transport {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    for (const [k, v] of Object.entries(opts.headers ?? {})) req.header.set(k, v);
    return next(req);
  };
  return createGrpcTransport({ baseUrl: `https://${opts.via ?? r.address}`, nodeOptions: { ca: r.caPem }, interceptors: [auth] });
}

async function principals(r: Running) {
  const client = await r.admin.createClient({ name: "alice" });
  const exporters = await Promise.all(["pi-1", "pi-2"].map((name) => r.admin.createExporter({ name, labels: { board: name } })));
  return {
    client: (headers?: Record<string, string>) => grpc(r, client.token, { headers }),
    exporter: (i: number, via?: string) => grpc(r, exporters[i]!.token, { via }),
  };
}

/** Drains a server stream, resolving once its first message has come (and the stream stays open). */
function openStream<T>(stream: AsyncIterable<T>): { first: Promise<T>; end: Promise<string> } {
  let first!: (v: T) => void;
  const firstP = new Promise<T>((r) => (first = r));
  const end = outcome((async () => {
    for await (const m of stream) first(m);
  })());
  return { first: firstP, end };
}

async function onlineOf(r: Running, name: string): Promise<boolean> {
  const { exporters } = await r.admin.listExporters({});
  return exporters.find((e) => e.name === name)!.online;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

test("a stop ends Status, Listen, a waiting Dial and both sides of a router stream with UNAVAILABLE, then returns", async () => {
  const r = await startController();
  const p = await principals(r);
  const exp1 = createClient(ControllerService, p.exporter(0));
  const exp2 = createClient(ControllerService, p.exporter(1));
  const clients = createClient(ClientService, p.client());
  const dialer = createClient(ControllerService, p.client());
  await exp1.register({ labels: {} });
  await exp2.register({ labels: {} });
  const status1 = openStream(exp1.status({}));
  const status2 = openStream(exp2.status({}));
  await Promise.all([status1.first, status2.first]);

  const leaseOn = async (board: string) => {
    const l = await clients.createLease({ lease: { selector: `board=${board}`, duration: { seconds: 600n } } });
    return l.name.split("/").pop()!;
  };
  const listened = await leaseOn("pi-1");
  const waiting = await leaseOn("pi-2");
  const listen = openStream(exp1.listen({ leaseName: listened }));
  const dial = await dialer.dial({ leaseName: listened });
  expect((await listen.first).routerToken).toBe(dial.routerToken);

  // Both sides of the tunnel, paired by the embedded router.
  const routerSide = (token: string) => {
    const router = createClient(RouterService, grpc(r, token));
    const out = (async function* () {
      yield { payload: new Uint8Array([1]), frameType: FrameType.DATA };
      await new Promise(() => {});
    })();
    return openStream(router.stream(out));
  };
  const clientSide = routerSide(dial.routerToken);
  const exporterSide = routerSide(dial.routerToken);
  await Promise.all([clientSide.first, exporterSide.first]);

  const pendingDial = outcome(dialer.dial({ leaseName: waiting }));
  await Bun.sleep(200);

  const t0 = performance.now();
  r.stop.abort();
  const ends: string[] = await Promise.all([status1.end, status2.end, listen.end, pendingDial, clientSide.end, exporterSide.end]);
  expect(ends).toEqual(Array<string>(6).fill("Unavailable: the controller is shutting down"));
  await r.done;
  const ms = performance.now() - t0;
  console.log(`controller stop with 6 open calls: ${Math.round(ms)} ms`);
  expect(ms).toBeLessThan(2000);
  running.splice(running.indexOf(r), 1);
  rmSync(r.dir, { recursive: true, force: true });
}, 30_000);

test("an exporter whose connection closes: Dial refuses at once, naming it and when it was last connected; offline 5 s later", async () => {
  const r = await startController();
  const p = await principals(r);
  const exporter = createClient(ControllerService, p.exporter(0));
  const clients = createClient(ClientService, p.client());
  const dialer = createClient(ControllerService, p.client());
  await exporter.register({ labels: {} });
  const abort = new AbortController();
  const status = openStream(exporter.status({}, { signal: abort.signal }));
  await status.first;
  const lease = (await clients.createLease({ lease: { selector: "board=pi-1", duration: { seconds: 600n } } })).name.split("/").pop()!;

  abort.abort();
  await status.end;
  const gone = performance.now();
  await until("the controller to see the stream closed", async () => {
    const e = await outcome(dialer.dial({ leaseName: lease }));
    return e.startsWith("Unavailable: exporter pi-1 is offline: not connected") ? e : undefined;
  }, 3000);
  const t0 = performance.now();
  const refused = await outcome(dialer.dial({ leaseName: lease }));
  expect(performance.now() - t0).toBeLessThan(500);
  expect(refused).toMatch(new RegExp(`^Unavailable: exporter pi-1 is offline: not connected to the controller \\(last connected (\\d+ms|[0-9]s) ago\\); lease ${lease} is kept: try again when the exporter is back$`));

  expect(await onlineOf(r, "pi-1")).toBe(true);
  await until("pi-1 offline", async () => ((await onlineOf(r, "pi-1")) ? undefined : true), 8000);
  const offlineAfter = performance.now() - gone;
  console.log(`exporter stream closed → offline after ${Math.round(offlineAfter)} ms`);
  expect(offlineAfter).toBeGreaterThan(4500);
  expect(offlineAfter).toBeLessThan(6500);
  const leases = await clients.getLease({ name: `namespaces/default/leases/${lease}` });
  expect(leases.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
}, 30_000);

/** A TCP relay that can go silent, like a network that drops every packet without closing anything. */
async function relay(to: string): Promise<{ address: string; silence(): void; close(): void }> {
  const [host, port] = [to.slice(0, to.lastIndexOf(":")), Number(to.slice(to.lastIndexOf(":") + 1))];
  let silent = false;
  const sockets: Socket[] = [];
  const server: Server = createServer((a) => {
    const b = netConnect(port, host);
    sockets.push(a, b);
    for (const [from, into] of [[a, b], [b, a]] as const) {
      from.on("data", (d) => {
        if (!silent) into.write(d);
      });
      from.on("error", () => {});
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    silence: () => (silent = true),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test("an exporter behind a network gone silent is dropped by the keepalive PING and goes offline", async () => {
  const r = await startController({ intervalMs: 300, timeoutMs: 300 });
  const net = await relay(r.address);
  cleanups.push(net.close);
  const p = await principals(r);
  const exporter = createClient(ControllerService, p.exporter(0, net.address));
  await exporter.register({ labels: {} });
  const status = openStream(exporter.status({}));
  await status.first;
  await Bun.sleep(1000);
  expect(await onlineOf(r, "pi-1")).toBe(true);
  const t0 = performance.now();
  net.silence();
  await until("pi-1 offline", async () => ((await onlineOf(r, "pi-1")) ? undefined : true), 10_000);
  const ms = performance.now() - t0;
  console.log(`silent network → exporter offline after ${Math.round(ms)} ms (PING every 300 ms, 300 ms to answer, 5 s reconnect grace)`);
  expect(ms).toBeLessThan(5000 + 3 * 300 + 1000);
}, 30_000);

test("CreateLease's presence metadata: 5..3600 whole seconds, echoed back; anything else is InvalidArgument naming it", async () => {
  const r = await startController();
  const p = await principals(r);
  const lease = { selector: "board=pi-1", duration: { seconds: 600n } };
  for (const bad of ["4", "3601", "abc", "7.5", ""]) {
    const clients = createClient(ClientService, p.client({ [PRESENCE_TIMEOUT_HEADER]: bad }));
    expect(await outcome(clients.createLease({ lease }))).toBe(
      `InvalidArgument: metadata 'x-jmp-presence-timeout' must be a whole number of seconds from 5 to 3600: got '${bad}'`,
    );
  }
  let echoed = null as string | null;
  const clients = createClient(ClientService, p.client({ [PRESENCE_TIMEOUT_HEADER]: "30" }));
  await clients.createLease({ lease }, { onHeader: (h) => (echoed = h.get(PRESENCE_TIMEOUT_HEADER)) });
  expect(echoed).toBe("30");
  let none = "unset" as string | null;
  await createClient(ClientService, p.client()).createLease({ lease }, { onHeader: (h) => (none = h.get(PRESENCE_TIMEOUT_HEADER)) });
  expect(none).toBeNull();
}, 30_000);
