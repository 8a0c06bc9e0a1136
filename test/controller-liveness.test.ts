/**
 * The controller's view of who is still there, on dist/jmp (issue 11): an exporter
 * killed with SIGKILL is offline within seconds and Dial says so at once (defect
 * 8); a controller stopped with SIGTERM ends its streams with a status (defect 1);
 * a lease whose client asked for a presence timeout and went silent is given back
 * (defects 2 and 3). Calls are made with gRPC metadata directly, as any client may.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { outcome } from "../src/common/call-outcome.ts";
import { ClientService } from "../src/gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { eventually } from "../src/api/eventually.ts";
import { Lab } from "./distributed/lab.ts";

const labs: Lab[] = [];
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.close()));
}, 20_000);

async function newLab(): Promise<Lab> {
  const l = await Lab.start();
  labs.push(l);
  return l;
}

/** A principal's credential as `jmp admin create` prints it, turned into a gRPC transport. */
async function transportFor(l: Lab, kind: "client" | "exporter", name: string, labels: string[] = [], headers: Record<string, string> = {}) {
  const doc = parse(await l.admin("create", kind, name, ...labels.flatMap((x) => ["-l", x]))) as { token: string; tls: { ca: string } };
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${doc.token}`);
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
  return createGrpcTransport({ baseUrl: `https://${l.endpoint}`, nodeOptions: { ca: Buffer.from(doc.tls.ca, "base64") }, interceptors: [auth] });
}

const leaseName = (full: string) => full.split("/").pop()!;

test("an exporter killed with SIGKILL: Dial refuses at once naming it, and it is offline within 5 s; its lease is kept", async () => {
  const l = await newLab();
  await l.addExporter("pi-1", { board: "x" });
  const exporter = await l.runExporter("pi-1");
  const bob = await transportFor(l, "client", "bob");
  const clients = createClient(ClientService, bob);
  const dialer = createClient(ControllerService, bob);
  const lease = leaseName((await clients.createLease({ lease: { selector: "board=x", duration: { seconds: 600n } } })).name);
  await l.serving("pi-1", lease);

  // The worker holds the connection (the supervisor would stop it cleanly if only it died).
  const worker = Number(readFileSync(`/proc/${exporter.pid}/task/${exporter.pid}/children`, "utf8").trim().split(/\s+/)[0]);
  process.kill(-worker, "SIGKILL");
  const killed = performance.now();
  await exporter.exited();
  const refusal = await eventually(async () => {
    expect(await outcome(dialer.dial({ leaseName: lease }))).toContain("is offline: not connected");
    return performance.now();
  }, { what: "Dial to say pi-1 is not connected", timeout: 5000, interval: 50 });
  const t0 = performance.now();
  const again = await outcome(dialer.dial({ leaseName: lease }));
  const dialMs = performance.now() - t0;
  expect(again).toMatch(new RegExp(`^Unavailable: exporter pi-1 is offline: not connected to the controller \\(last connected \\S+ ago\\); lease ${lease} is kept: try again when the exporter is back$`));
  expect(dialMs).toBeLessThan(1000);

  const offline = await eventually(async () => {
    const e = (await l.adminExporters()).find((x) => x.name === "pi-1")!;
    expect(e.online).toBe(false);
    return { e, at: performance.now() };
  }, { what: "pi-1 offline", interval: 50 });
  console.log(`SIGKILLed exporter: Dial refused ${Math.round(refusal - killed)} ms after the kill (answer in ${Math.round(dialMs)} ms); offline after ${Math.round(offline.at - killed)} ms`);
  expect(offline.e.status).toBe("OFFLINE");
  expect(offline.at - killed).toBeLessThan(7000);
  const kept = await clients.getLease({ name: `namespaces/default/leases/${lease}` });
  expect(kept.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
}, 60_000);

test("SIGTERM: an exporter's Status stream ends with UNAVAILABLE 'the controller is shutting down', and the controller exits within 3 s", async () => {
  const l = await newLab();
  await l.addExporter("pi-1", { board: "x" });
  const real = await l.runExporter("pi-1");
  const raw = createClient(ControllerService, await transportFor(l, "exporter", "pi-2"));
  await raw.register({ labels: {} });
  let first!: () => void;
  const opened = new Promise<void>((r) => (first = r));
  const ended = outcome((async () => {
    for await (const _ of raw.status({})) first();
  })());
  await opened;
  const before = real.lines.length;
  const t0 = performance.now();
  l.controller.signal("SIGTERM");
  expect(await ended).toBe("Unavailable: the controller is shutting down");
  expect(await l.controller.exited(5000)).toBe(143);
  const ms = performance.now() - t0;
  console.log(`controller SIGTERM with two exporters connected: exited after ${Math.round(ms)} ms`);
  expect(ms).toBeLessThan(3000);
  expect(l.controller.output).toContain("stopping: ending");
  // What the exporter's operator reads is the point: the exporter's log names the cause, not 'missing status'.
  await real.waitLine(/controller unreachable|controller error/, { from: before });
  expect(real.output).not.toContain("missing status");
  await l.startController();
}, 60_000);

test("a lease whose client asked for a 5 s presence timeout and went silent is given back; one whose client keeps asking is kept", async () => {
  const l = await newLab();
  await l.addExporter("pi-1", { board: "x" });
  await l.addExporter("pi-2", { board: "x" });
  await l.runExporter("pi-1");
  await l.runExporter("pi-2");
  await l.addClient("waiter");
  const present = createClient(ClientService, await transportFor(l, "client", "alice", [], { "x-jmp-presence-timeout": "5" }));
  const silent = createClient(ClientService, await transportFor(l, "client", "bob", [], { "x-jmp-presence-timeout": "5" }));
  const spec = { lease: { selector: "board=x", duration: { seconds: 600n } } };
  const kept = leaseName((await present.createLease(spec)).name);
  const gone = leaseName((await silent.createLease(spec)).name);
  // bob's presence clock starts with his CreateLease, not after the waiter's `jmp lease
  // create` (a process of its own: up to a second on a loaded machine).
  const t0 = performance.now();
  const waiting = await l.createLease("waiter", "board=x");
  expect(waiting.state).toBe("Pending");

  const handed = await eventually(async () => {
    await present.getLease({ name: `namespaces/default/leases/${kept}` });
    const w = await l.lease(waiting.name, "waiter");
    expect(w.state).toBe("Ready");
    return w;
  }, { what: "the waiting lease to get bob's exporter", timeout: 15_000 });
  const ms = performance.now() - t0;
  console.log(`silent client with a 5 s presence timeout: lease given back after ${Math.round(ms)} ms`);
  expect(ms).toBeGreaterThan(4500);
  const bobs = await silent.getLease({ name: `namespaces/default/leases/${gone}` });
  expect(bobs.conditions.find((c) => c.type === "Ready")).toMatchObject({
    status: "False",
    reason: "ClientGone",
    message: "no sign of client bob for 5 s: the lease was given back",
  });
  expect(handed.exporter).toBe(bobs.exporter!.split("/").pop());
  const alices = await present.getLease({ name: `namespaces/default/leases/${kept}` });
  expect(alices.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
}, 60_000);
