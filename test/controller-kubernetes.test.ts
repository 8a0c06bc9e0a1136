/**
 * Two `jmp controller run --backend kubernetes` replicas (dist/jmp) on the API server
 * double, behind a TCP balancer standing in for the Kubernetes Service, with exporters
 * and a client as in test/distributed: leases through either replica, the leader
 * SIGKILLed or stopped by SIGTERM during a storm of lease creates and deletes (no
 * lease lost, no exporter held by two leases, the failover time measured), and the
 * API server down for 30 s.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../src/api/eventually.ts";
import { CRD_DIR, type KubeApiServer, startKubeApiServer } from "./kube-apiserver/server.ts";
import { freePort, jmp, tempDir } from "./helpers.ts";
import { ALL_BUT_LEASE_STATUS, KubeLab, LEASES, NS } from "./distributed/kube-lab.ts";
import { connect, KubeApi } from "../src/controller/store/kubernetes/api.ts";

let lab: KubeLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

async function setUp(exporters: string[]): Promise<KubeLab> {
  lab = await KubeLab.startKube();
  await lab.addClient("alice");
  for (const e of exporters) await lab.addExporter(e, { board: "rpi4" });
  for (const e of exporters) await lab.runExporter(e);
  return lab;
}

test("two replicas on the cluster: one leads, a lease made through either gets an exporter, and upstream's objects say so", async () => {
  const l = await setUp(["pi-1", "pi-2"]);
  await eventually(() => l.leader() ?? Promise.reject(new Error("no single leader")), { what: "one leader", interval: 50, timeout: 20_000 });
  // Through each replica in turn, past the Service (which sends everything to the leader):
  // a standby answers from its watch cache and writes with preconditions too.
  const files = tempDir("jmp-kube-direct-");
  const direct = l.replicaPorts.map((port, i) => {
    const file = join(l.env.JMP_CLIENT_CONFIG_HOME!, "clients", "alice.yaml");
    const doc = readFileSync(file, "utf8").replace(/^endpoint: .*$/m, `endpoint: 127.0.0.1:${port}`);
    return files.file(`alice-${i}.yaml`, doc);
  });
  const leases: { name: string }[] = [];
  for (let i = 0; i < 4; i++) {
    const out = await l.ok(["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client-config", direct[i % direct.length]!, "-o", "json"]);
    leases.push((JSON.parse(out) as { name: string }[])[0]!);
  }
  const states = await Promise.all(leases.map((x) => eventually(async () => {
    const now = await l.lease(x.name, "alice");
    if (now.state === "Unknown") throw new Error("not yet");
    return now;
  }, { what: "the lease to settle", interval: 100, timeout: 15_000 })));
  expect(states.filter((s) => s.state === "Ready").map((s) => s.exporter).sort()).toEqual(["pi-1", "pi-2"]);
  expect(states.filter((s) => s.state === "Pending")).toHaveLength(2);
  const stored = l.api.objects(LEASES, NS) as { metadata: { name: string }; spec: { clientRef: { name: string }; selector: unknown }; status: { exporterRef?: { name: string }; ended: boolean } }[];
  const first = stored.find((o) => o.metadata.name === states.find((s) => s.state === "Ready")!.name)!;
  expect(first.spec).toMatchObject({ clientRef: { name: "alice" }, selector: { matchLabels: { board: "rpi4" } } });
  expect(first.status).toMatchObject({ ended: false, exporterRef: { name: expect.stringMatching(/^pi-/) } });
  expect(JSON.parse(await l.admin("get", "exporters", "-o", "json")).map((e: { name: string }) => e.name)).toEqual(["pi-1", "pi-2"]);
  // The audit log, in ConfigMaps both replicas append to: every lease made through either one.
  await eventually(async () => {
    const made = (JSON.parse(await l.admin("audit", "-o", "json")) as { action: string; lease?: string; actor: string }[])
      .filter((e) => e.action === "lease.create");
    expect(made.map((e) => e.lease).sort()).toEqual(leases.map((x) => x.name).sort());
    expect(made.every((e) => e.actor === "client/alice")).toBe(true);
  }, { what: "both replicas' audit entries", interval: 200, timeout: 10_000 });
  expect(l.api.objects("configmaps", NS).map((c) => c.metadata.name)).toContain("jmp-audit-0000000001");
  files.remove();
}, 120_000);

test("behind the Service only the leader is ready, so a client's shell and its exporter meet on one replica, every time", async () => {
  const l = await setUp(["pi-1"]);
  const leader = await eventually(() => l.leader() ?? Promise.reject(new Error("no single leader")), { what: "one leader", interval: 50, timeout: 20_000 });
  const readiness = await Promise.all(l.replicaPorts.map(async (port) =>
    (await fetch(`https://127.0.0.1:${port}/readyz`, { tls: { rejectUnauthorized: false } } as RequestInit)).status));
  expect(readiness.filter((s) => s === 200)).toHaveLength(1);
  expect(readiness.filter((s) => s === 503)).toHaveLength(1);
  expect(leader).toBeDefined();
  // Each shell dials through the balancer and pairs through the router of the replica it reached.
  for (let i = 0; i < 4; i++) {
    const r = await l.jmp(["shell", "-l", "board=rpi4", "--client", "alice", "--", "j", "power", "on"], { timeoutMs: 60_000 });
    expect({ i, code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ i, code: 0, stderr: "" });
  }
}, 120_000);

// SIGTERM: the leader stops gracefully mid-storm (its renewals in flight: a stopped
// leader once became leader again when one landed, leader.test.ts).
for (const sig of ["SIGKILL", "SIGTERM"] as const) test(`the leader ${sig === "SIGKILL" ? "SIGKILLed" : "stopped by SIGTERM"} during a storm of lease creates and deletes: no lease lost, no exporter held twice; failover measured`, async () => {
  const l = await setUp(["pi-1", "pi-2", "pi-3"]);
  const leader = await eventually(() => l.leader() ?? Promise.reject(new Error("no single leader")), { what: "one leader", interval: 50, timeout: 20_000 });
  const created: string[] = [];
  const doubled = new Set<string>();
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      for (const d of l.doubleBooked()) doubled.add(d);
      await Bun.sleep(50);
    }
  })();
  const worker = async () => {
    while (!stop) {
      const r = await l.jmp(["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client", "alice", "-o", "json"]);
      if (r.code !== 0) continue; // refused while failing over: the client says so and nothing was created
      const name = (JSON.parse(r.stdout) as { name: string }[])[0]!.name;
      created.push(name);
      await l.jmp(["lease", "delete", name, "--client", "alice"]);
    }
  };
  const workers = [worker(), worker(), worker()];
  await Bun.sleep(3000);
  const killedAt = performance.now();
  const other = l.replicas.find((p) => p !== leader)!;
  const from = other.lines.length;
  leader.signal(sig);
  await other.waitLine("leading as ", { from, timeoutMs: 30_000 });
  const failoverMs = Math.round(other.lines.find((x, i) => i >= from && x.text.includes("leading as "))!.at - killedAt);
  await Bun.sleep(3000);
  stop = true;
  await Promise.all(workers);
  await sampler;
  const stored = new Set((l.api.objects(LEASES, NS) as { metadata: { name: string } }[]).map((o) => o.metadata.name));
  const lost = created.filter((n) => !stored.has(n));
  console.log(`failover: ${failoverMs} ms after ${sig}; ${created.length} leases created during the storm, ${lost.length} lost, ${doubled.size} exporters held twice`);
  expect(created.length).toBeGreaterThan(5);
  expect(lost).toEqual([]);
  expect([...doubled]).toEqual([]);
  // The survivor schedules: a new lease gets an exporter (every storm lease was released).
  const after = await l.createLease("alice", "board=rpi4");
  await eventually(async () => {
    if ((await l.lease(after.name, "alice")).state !== "Ready") throw new Error("not Ready");
  }, { what: "a lease after the failover to be Ready", interval: 100, timeout: 20_000 });
}, 180_000);

/** A lab with exporter pi-1, one leader, and alice's lease Ready on pi-1. */
async function heldOnPi1(): Promise<{ l: KubeLab; held: { name: string } }> {
  const l = await setUp(["pi-1"]);
  await eventually(() => l.leader() ?? Promise.reject(new Error("no single leader")), { what: "one leader", interval: 50, timeout: 20_000 });
  const held = await l.createLease("alice", "board=rpi4", "10m");
  await eventually(async () => {
    if ((await l.lease(held.name, "alice")).state !== "Ready") throw new Error("not Ready");
  }, { what: "the lease to be Ready", interval: 100, timeout: 20_000 });
  return { l, held };
}

type StoredLease = { metadata: { name: string }; spec: { release?: boolean }; status?: { ended?: boolean; conditions?: { type: string; reason: string }[] } };
const stored = (l: KubeLab, name: string) => (l.api.objects(LEASES, NS) as StoredLease[]).find((o) => o.metadata.name === name)!;

test("a release cut between its spec and status writes: the client is told, and the lease ends (not 'already released' and open for good)", async () => {
  const { l, held } = await heldOnPi1();
  const waiting = await l.createLease("alice", "board=rpi4", "10m");

  l.api.setRules(l.api.token, ALL_BUT_LEASE_STATUS);
  const leader = l.leader()!;
  const from = leader.lines.length;
  const cut = await l.jmp(["lease", "delete", held.name, "--client", "alice"]);
  // The client is told it failed and what an admin must grant; the leader's log has the API server's words.
  expect(cut.code).toBe(1);
  expect(cut.stderr).toContain("the controller's Kubernetes role may not update leases.jumpstarter.dev/status: an admin must grant it");
  expect(cut.stderr).not.toContain("internal error");
  await leader.waitLine(`refused a write: update leases.jumpstarter.dev/status ${held.name}`, { from, timeoutMs: 5_000 });
  // Half of it landed: spec.release, not status.ended.
  expect(stored(l, held.name).spec.release).toBe(true);
  expect(stored(l, held.name).status?.ended).not.toBe(true);

  l.api.setRules(l.api.token, "*");
  const retry = await l.jmp(["lease", "delete", held.name, "--client", "alice"]);
  // Whichever comes first ends it: this retry, or the leader's next pass (a status report may run one).
  expect(retry.code).toBe(0);
  expect([`released ${held.name}`, `${held.name} was already released`]).toContain(retry.stdout.trim());
  await eventually(async () => {
    expect(stored(l, held.name).status).toMatchObject({ ended: true, conditions: [expect.objectContaining({ type: "Ready", reason: "Released" })] });
    expect((await l.lease(waiting.name, "alice"))).toMatchObject({ state: "Ready", exporter: "pi-1" });
  }, { what: "the lease ended and pi-1 handed to the waiting one", interval: 100, timeout: 15_000 });
  expect(l.doubleBooked()).toEqual([]);
}, 120_000);

test("spec.release set by another tool (as upstream's clients do, or kubectl): the leader ends the lease and frees its exporter", async () => {
  const { l, held } = await heldOnPi1();
  const api = new KubeApi(connect({ kubeconfig: l.kubeconfig }));
  const obj = await api.get("leases", held.name);
  await api.replace("leases", { ...obj, spec: { ...obj.spec, release: true } });
  await eventually(async () => {
    expect(stored(l, held.name).status).toMatchObject({ ended: true, conditions: [expect.objectContaining({ type: "Ready", reason: "Released" })] });
  }, { what: "the leader to end the released lease", interval: 100, timeout: 15_000 });
  const next = await l.createLease("alice", "board=rpi4", "10m");
  await eventually(async () => {
    expect(await l.lease(next.name, "alice")).toMatchObject({ state: "Ready", exporter: "pi-1" });
  }, { what: "pi-1 to go to the next lease", interval: 100, timeout: 15_000 });
}, 120_000);

test("audit entries still gathering when the controller is stopped (SIGTERM) are written before it exits", async () => {
  const l = await setUp(["pi-1"]);
  const lease = await l.createLease("alice", "board=rpi4");
  // At once: the entries wait up to 100 ms to be written together.
  l.controller.signal("SIGTERM");
  // 128 + 15, after a graceful stop (as controller-liveness.test.ts).
  expect(await l.controller.exited(5000)).toBe(143);
  const entries = l.api.objects("configmaps", NS).map((c) => String(c.data?.entries ?? "")).join("");
  expect(entries).toContain(`"lease":"${lease.name}"`);
  expect(entries).toContain('"action":"lease.create"');
}, 120_000);

test("the API server down for 30 s and back: replicas keep serving what they have, then write again", async () => {
  const l = await setUp(["pi-1"]);
  await eventually(() => l.leader() ?? Promise.reject(new Error("no single leader")), { what: "one leader", interval: 50, timeout: 20_000 });
  await l.api.stop();
  const downAt = Date.now();
  // Reads come from the cache; a write says the cluster cannot be reached.
  expect(JSON.parse(await l.admin("get", "exporters", "-o", "json")).map((e: { name: string }) => e.name)).toEqual(["pi-1"]);
  const refused = await l.jmp(["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--client", "alice"]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain("Kubernetes API server is unreachable");
  await Bun.sleep(30_000 - (Date.now() - downAt));
  await l.api.start();
  const lease = await eventually(() => l.createLease("alice", "board=rpi4"), { what: "a lease once the API server is back", interval: 500, timeout: 30_000 });
  await eventually(async () => {
    if ((await l.lease(lease.name, "alice")).state !== "Ready") throw new Error("not Ready");
  }, { what: "the lease to be Ready", interval: 200, timeout: 30_000 });
  for (const p of l.replicas) {
    expect(p.exitCode).toBeNull();
    // One line a minute per kind at most while it was down.
    expect(p.count(/retrying/)).toBeLessThanOrEqual(6);
  }
}, 180_000);

describe("bad clusters: one line naming what is wrong, exit 2", () => {
  let api: KubeApiServer | undefined;
  const dir = tempDir("jmp-kube-bad-");
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  const run = async (extra: string[] = []) => {
    const kubeconfig = join(dir.path, "kubeconfig");
    api!.writeKubeconfig(kubeconfig, { namespace: NS });
    return jmp(["controller", "run", "--backend", "kubernetes", "--kubeconfig", kubeconfig, "--data-dir", join(dir.path, "data"),
      "--listen", `127.0.0.1:${await freePort()}`, ...extra], { timeoutMs: 30_000 });
  };

  test("a CRD missing: names it and 'jmp controller manifests'", async () => {
    const crds = readdirSync(CRD_DIR).filter((f) => f.endsWith(".yaml") && !f.includes("_leases")).map((f) => readFileSync(join(CRD_DIR, f), "utf8"));
    api = await startKubeApiServer({ crds });
    const r = await run();
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      "Error: the CustomResourceDefinition leases.jumpstarter.dev is not installed in the cluster: install the CRDs with 'jmp controller manifests | kubectl apply -f -'",
    );
  });

  test("a permission missing: the verb and the resource", async () => {
    api = await startKubeApiServer();
    api.setRules(api.token, [
      { apiGroups: [""], resources: ["secrets"], verbs: ["get", "create"] },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
      // Only exporters missing: with two kinds missing, whichever list fails first is named.
      { apiGroups: ["jumpstarter.dev"], resources: ["clients", "leases", "exporteraccesspolicies"], verbs: ["get", "list", "watch", "create", "update", "delete"] },
    ]);
    const r = await run();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("the controller may not list exporters.jumpstarter.dev in namespace 'default'");
    expect(r.stderr).toContain("403 Forbidden");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a kubeconfig that does not exist: names the file", async () => {
    const r = await jmp(["controller", "run", "--backend", "kubernetes", "--kubeconfig", join(dir.path, "nope"), "--data-dir", join(dir.path, "data")]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`Error: the kubeconfig ${join(dir.path, "nope")} does not exist`);
  });
});
