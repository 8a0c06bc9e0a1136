/**
 * GET /metrics on the controller's own port, scraped over HTTP/1.1 as Prometheus
 * does, during and after a storm of leases; every figure is parsed with a real
 * text-format parser and checked against what the test did.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { Lab } from "./distributed/lab.ts";
import { freePort } from "./helpers.ts";
import { type Family, parsePrometheusText, sampleValue } from "./prom-text.ts";

const labs: Lab[] = [];
afterAll(async () => {
  await Promise.all(labs.map((l) => l.close()));
}, 30_000);

/** GET over HTTPS with HTTP/1.1 (fetch in Bun speaks nothing else), trusting the lab's CA. */
async function get(lab: Lab, path: string): Promise<Response> {
  const ca = readFileSync(join(lab.dataDir, "ca.pem"), "utf8");
  return fetch(`https://${lab.endpoint}${path}`, { tls: { ca } } as RequestInit);
}

async function scrape(lab: Lab): Promise<Map<string, Family>> {
  const res = await get(lab, "/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parsePrometheusText(await res.text());
}

describe("controller /metrics", () => {
  test("a lease storm's counts, the queue while it waits, RPCs, token refusals and router bytes", async () => {
    const lab = await Lab.start();
    labs.push(lab);
    for (const name of ["sim-1", "sim-2"]) await lab.addExporter(name, { board: "sim" });
    await lab.addExporter("idle-1", { board: "other" });
    await lab.addClient("alice");
    await Promise.all(["sim-1", "sim-2"].map((e) => lab.runExporter(e)));
    await lab.admin("exporter", "disable", "idle-1", "--reason", "bench");

    const cfg = parse(readFileSync(join(lab.env.JMP_CLIENT_CONFIG_HOME!, "clients", "alice.yaml"), "utf8")) as { token: string; tls: { ca: string } };
    const [{ connectController }, { LeaseApi }] = await Promise.all([import("../src/client/controller.ts"), import("../src/client/leases.ts")]);
    const api = new LeaseApi(connectController({ endpoint: lab.endpoint, token: cfg.token, namespace: "default", name: "alice", tls: { ca: cfg.tls.ca, insecure: false } }));

    const before = await scrape(lab);
    const created0 = sampleValue(before, "jmp_leases_created_total");

    // The storm: twelve leases at once for two boards.
    const STORM = 12;
    const leases = await Promise.all(Array.from({ length: STORM }, () => api.create({ selector: "board=sim", durationMs: 600_000 })));
    const during = await scrape(lab);
    const open = await lab.openLeases();
    const pending = open.filter((l) => l.state === "Pending").length;
    const ready = open.filter((l) => l.state === "Ready").length;
    expect({ pending, ready }).toEqual({ pending: STORM - 2, ready: 2 });
    expect(sampleValue(during, "jmp_lease_queue_length", { namespace: "default" })).toBe(pending);
    expect(sampleValue(during, "jmp_leases", { state: "pending" })).toBe(pending);
    expect(sampleValue(during, "jmp_leases", { state: "active" })).toBe(ready);
    expect(sampleValue(during, "jmp_exporters", { labels: "board=sim" })).toBe(2);
    expect(sampleValue(during, "jmp_exporters_leased", { labels: "board=sim" })).toBe(2);
    expect(sampleValue(during, "jmp_exporters_online", { labels: "board=sim" })).toBe(2);
    expect(sampleValue(during, "jmp_exporters_online", { labels: "board=other" })).toBe(0);
    expect(sampleValue(during, "jmp_exporters_disabled", { labels: "board=other" })).toBe(1);
    expect(sampleValue(during, "jmp_leases_created_total") - created0).toBe(STORM);

    // The queue drains as a lab's would: each lease is released once it holds its board,
    // which goes to the next in line (in the controller's order, not this array's).
    const waiting = new Set(leases.map((l) => l.name));
    await eventually(async () => {
      for (const name of waiting) {
        if ((await api.get(name)).state !== "Ready") continue;
        await api.release(name);
        waiting.delete(name);
      }
      if (waiting.size) throw new Error(`${waiting.size} leases not yet served`);
    }, { what: "every lease of the storm to be served and released", timeout: 60_000, interval: 20 });
    await eventually(async () => {
      const left = await lab.openLeases();
      if (left.length) throw new Error(`${left.length} leases still open`);
    }, { what: "every lease to end", timeout: 20_000, interval: 50 });

    // A shell through the embedded router: a paired stream, and bytes both ways.
    await lab.ok(["shell", "-l", "board=sim", "--client", "alice", "--", "j", "power", "on"]);

    // A garbage token: refused as malformed, by the token check.
    const bad = await fetch(`https://${lab.endpoint}/jumpstarter.client.v1.ClientService/ListLeases`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: "{}",
      tls: { ca: readFileSync(join(lab.dataDir, "ca.pem"), "utf8") },
    } as RequestInit);
    // HTTP/1.1 on the gRPC port: only /metrics is served that way.
    expect(bad.status).toBe(505);
    expect(await bad.text()).toContain("only GET /metrics");
    const badApi = new LeaseApi(connectController({ endpoint: lab.endpoint, token: "not-a-jwt", namespace: "default", name: "alice", tls: { ca: cfg.tls.ca, insecure: false } }));
    await expect(badApi.list()).rejects.toThrow();

    const after = await eventually(async () => {
      const m = await scrape(lab);
      // The shell's lease ends after the command returns; wait for its release to be counted.
      if (sampleValue(m, "jmp_leases_ended_total") - sampleValue(before, "jmp_leases_ended_total") < STORM + 1) throw new Error("the shell's lease has not ended yet");
      return m;
    }, { what: "the shell's lease to be counted as ended", timeout: 10_000, interval: 100 });
    const d = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(d("jmp_leases_created_total")).toBe(STORM + 1);
    expect(d("jmp_leases_ended_total", { reason: "Released" })).toBe(STORM + 1);
    // Every lease got a board, waited once and was held once.
    expect(d("jmp_lease_queue_wait_seconds_count")).toBe(STORM + 1);
    expect(d("jmp_lease_duration_seconds_count")).toBe(STORM + 1);
    // Ten of the storm waited for a release: some time in the queue was counted.
    expect(d("jmp_lease_queue_wait_seconds_sum")).toBeGreaterThan(0);
    expect(sampleValue(after, "jmp_lease_queue_length")).toBe(0);
    expect(sampleValue(after, "jmp_leases")).toBe(0);
    // The RPCs, by method and code, counted by the interceptor.
    expect(d("jmp_rpc_handled_total", { method: "CreateLease", code: "OK" })).toBeGreaterThanOrEqual(STORM);
    expect(d("jmp_rpc_handled_total", { method: "DeleteLease", code: "OK" })).toBeGreaterThanOrEqual(STORM);
    expect(d("jmp_rpc_handling_seconds_count", { method: "CreateLease" })).toBe(d("jmp_rpc_handled_total", { method: "CreateLease" }));
    expect(d("jmp_rpc_handled_total", { method: "ListLeases", code: "Unauthenticated" })).toBe(1);
    expect(d("jmp_token_refusals_total", { reason: "malformed" })).toBe(1);
    // The shell's stream went through the embedded router.
    expect(d("jmp_router_streams_paired_total")).toBeGreaterThanOrEqual(1);
    expect(d("jmp_router_bytes_total")).toBeGreaterThan(0);
    expect(sampleValue(after, "jmp_router_streams_open")).toBe(0);
    expect(d("jmp_store_transaction_seconds_count")).toBeGreaterThan(2 * STORM);
    expect(sampleValue(after, "jmp_process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(sampleValue(after, "jmp_process_cpu_seconds_total")).toBeGreaterThan(0);
    for (const f of after.values()) expect(f.help, `${f.name} has a HELP line`).toBeTruthy();
  }, 120_000);

  test("jmp run --metrics-listen serves the exporter's driver calls by method and code", async () => {
    const lab = await Lab.start();
    labs.push(lab);
    await lab.addExporter("sim-1", { board: "sim" });
    await lab.addClient("alice");
    const port = await freePort();
    const p = lab.spawn("exporter sim-1", ["run", "--exporter", "sim-1", "--metrics-listen", `127.0.0.1:${port}`]);
    lab.exporters.set("sim-1", p);
    await lab.exporterUntil("sim-1", (e) => e.online && e.status === "AVAILABLE", "to register");
    await lab.ok(["shell", "-l", "board=sim", "--client", "alice", "--", "sh", "-c", "j power on && j power off && j power on"]);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const m = parsePrometheusText(await res.text());
    expect(sampleValue(m, "jmp_rpc_handled_total", { method: "DriverCall", code: "OK" })).toBe(3);
    expect(sampleValue(m, "jmp_rpc_handling_seconds_count", { method: "DriverCall" })).toBe(3);
    expect(sampleValue(m, "jmp_process_resident_memory_bytes")).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    // A bad address is one line naming the flag.
    const bad = await lab.jmp(["run", "--exporter", "sim-1", "--metrics-listen", "127.0.0.1:notaport"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("--metrics-listen");
  }, 60_000);
});
