/**
 * Controller scale: a real `jmp controller run`, N simulated exporters (a child
 * process, bench/sim-exporters.ts, so its CPU is not the controller's) and 8 clients
 * churning leases (create with a selector any free exporter matches, wait for Ready,
 * release). N grows in steps in the one controller; each step's figures are compared
 * with the smallest step's, so the ratio says how a figure grows with N.
 */
import { readFileSync } from "node:fs";
import { loadAdminConfig } from "../src/common/client-config.ts";
import { connectAdmin } from "../src/client/admin-client.ts";
import { connectController } from "../src/client/controller.ts";
import { LeaseApi } from "../src/client/leases.ts";
import { KubeLab } from "../test/distributed/kube-lab.ts";
import { Lab } from "../test/distributed/lab.ts";
import { cost, median, percentile, rate, rssMiB, type Options, type Result } from "./lib.ts";
import { spawnSimExporters, type SimProcess, type SimStats } from "./sim-exporters.ts";

export const CLIENTS = 8;
/** How often a client asks again while its lease is Pending. */
const POLL_MS = 10;
/** `getconf CLK_TCK`: the unit of utime and stime in /proc/PID/stat (100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which may hold spaces: state is the 3rd field, utime the 14th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

interface Step {
  n: number;
  /** Exporters created, registered and streaming per second while this step's were added. */
  upPerSecond: number;
  /** Controller CPU % with the exporters idle (Status streams and their heartbeats only). */
  idleCpu: number;
  lat: number[];
  waited: number;
  leasesPerSecond: number;
  /** Controller CPU % (of one core) during the churn, and CPU ms per lease. */
  cpu: number;
  cpuPerLease: number;
  rss: number;
}

interface Churn {
  /** create → Ready, ms. */
  lat: number[];
  /** Leases that were Pending at first (no exporter free and AVAILABLE yet). */
  waited: number;
  seconds: number;
}

/** CLIENTS clients `<prefix>-<i>`, created through the admin API of the controller whose data dir this is. */
export async function churnClients(dataDir: string, prefix: string): Promise<LeaseApi[]> {
  const admin = loadAdminConfig({}, {}, dataDir);
  const adminApi = connectAdmin(admin);
  return await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const c = await adminApi.createClient("default", `${prefix}-${i}`, {});
    return new LeaseApi(connectController({ endpoint: admin.endpoint, token: c.token, namespace: c.namespace, name: c.name, tls: { ca: c.caPem }, kind: "Client" }));
  }));
}

/** `clients` loops of create → Ready → release for `ms`. */
export async function churn(clients: LeaseApi[], ms: number): Promise<Churn> {
  const lat: number[] = [];
  let waited = 0;
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(clients.map(async (api) => {
    while (performance.now() < deadline) {
      const t = performance.now();
      let v = await api.create({ selector: "sim=yes", durationMs: 600_000 });
      if (v.state !== "Ready") waited++;
      while (v.state !== "Ready") {
        if (v.state !== "Pending") throw new Error(`lease ${v.name} is ${v.state}: ${v.message}`);
        await Bun.sleep(POLL_MS);
        v = await api.get(v.name);
      }
      lat.push(performance.now() - t);
      await api.release(v.name);
    }
  }));
  return { lat, waited, seconds: (performance.now() - start) / 1000 };
}

/** Waits (at most 60 s) until the controller uses under a tenth of a core over half a second. */
export async function settled(pid: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (let last = cpuSeconds(pid); performance.now() < deadline;) {
    await Bun.sleep(500);
    const now = cpuSeconds(pid);
    if (now - last < 0.05) return;
    last = now;
  }
}

/** Runs `fn` while sampling the controller: CPU % over the run, peak RSS. */
export async function measured<T>(pid: number, fn: () => Promise<T>): Promise<{ value: T; cpu: number; cpuSeconds: number; rss: number }> {
  let rss = rssMiB(pid);
  const sampler = setInterval(() => (rss = Math.max(rss, rssMiB(pid))), 100);
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  try {
    const value = await fn();
    const used = cpuSeconds(pid) - c0;
    return { value, cpu: (100 * used) / ((performance.now() - t0) / 1000), cpuSeconds: used, rss: Math.max(rss, rssMiB(pid)) };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * `levels` and `churnMs` override the mode's, for trying other sizes by hand.
 * `backend: "kubernetes"` runs one `--backend kubernetes` controller on the API server
 * double (test/kube-apiserver) instead of SQLite; its figures are named `scale k8s N`.
 * The controller's CPU is measured, not the double's (it runs in this process).
 */
export async function controllerScale(
  { quick }: Options,
  override: { levels?: number[]; churnMs?: number; backend?: "sqlite" | "kubernetes" } = {},
): Promise<Result[]> {
  const kube = override.backend === "kubernetes";
  // 10 000 is the size issue 16 sets the controller's goals at (create→Ready p99, RSS); quick stays small for CI.
  const levels = override.levels ?? (quick ? [20, 100] : kube ? [100, 1000] : [100, 1000, 5000, 10_000]);
  const churnMs = override.churnMs ?? (quick ? 1500 : 5000);
  const idleMs = quick ? 500 : 2000;
  const lab = kube ? await KubeLab.startKube({ replicas: 1 }) : await Lab.start();
  const sims: SimProcess[] = [];
  let failed = false;
  try {
    const pid = lab.controller.pid;
    const clients = await churnClients(lab.dataDir, "scale");
    await Bun.sleep(500);
    const idleRss = rssMiB(pid);

    const steps: Step[] = [];
    let have = 0;
    for (const n of levels) {
      const more = n - have;
      // Bounded: a controller that slows down with N must fail the run, not stall it (about 300/s is usual).
      const sim = await spawnSimExporters(["--data-dir", lab.dataDir, "--count", String(more), "--start", String(have)], 30_000 + 15 * more);
      sims.push(sim);
      // The tool's own timing: its start-up (loading modules, TLS) is not the controller's.
      const upPerSecond = more / (sim.ready.createSeconds + sim.ready.upSeconds);
      have = n;
      // "Up" is every Status stream open; the exporters' first status reports, sent
      // without waiting, may still be arriving: idle and churn start once they are in.
      await settled(pid);
      const idle = await measured(pid, () => Bun.sleep(idleMs));
      // The first step also warms the controller up (JIT, SQLite caches) before it is measured.
      if (steps.length === 0) await churn(clients, churnMs / 2);
      const run = await measured(pid, () => churn(clients, churnMs));
      const { lat, waited, seconds } = run.value;
      steps.push({
        n, upPerSecond, idleCpu: idle.cpu, lat, waited, leasesPerSecond: lat.length / seconds,
        cpu: run.cpu, cpuPerLease: (1000 * run.cpuSeconds) / lat.length, rss: run.rss,
      });
    }
    const stats = await Promise.all(sims.splice(0).map((s) => s.stop()));
    // Each closed Status stream is a commit (its lastSeen): with 10 000 of them the
    // controller is busy for seconds, and the lab's stop would count that as stuck.
    await settled(lab.controller.pid);
    const sum = (f: (s: SimStats) => number) => stats.reduce((a, s) => a + f(s), 0);
    const fleet = `the simulated exporters saw ${sum((s) => s.leases)} leases, with ${sum((s) => s.reconnects)} stream reconnects and ${sum((s) => s.reportErrors)} failed status reports`;
    return figures(steps, idleRss, fleet, kube ? "scale k8s" : "scale");
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    await Promise.allSettled(sims.map((s) => s.stop()));
    // A controller stuck on cleanup must not hide why the run failed.
    await lab.close().catch((e: Error) => {
      if (!failed) throw e;
      console.error(`(and the controller did not stop cleanly: ${e.message.split("\n")[0]})`);
    });
  }
}

function figures(steps: Step[], idleRss: number, fleet: string, scale: string): Result[] {
  const base = steps[0]!;
  const at = `N=${base.n}`;
  const vs = `floor = the same at ${at}`;
  // Bring-up speed is in the notes only: each step's batch starts a cold generator
  // process and the first meets a cold controller, so its ratio would mislead.
  const out = steps.map((s, i) =>
    cost(`${scale} ${s.n}: controller RSS`, s.rss, idleRss, "MiB",
      `peak during the churn with ${s.n} exporters; floor = the controller with none; ` +
        `${s.n - (steps[i - 1]?.n ?? 0)} exporters came up (created, registered, Status stream open) at ${s.upPerSecond.toFixed(0)}/s`));
  for (const s of steps.slice(1)) {
    out.push(
      cost(`${scale} ${s.n}: lease create→Ready p50`, median(s.lat), median(base.lat), "ms",
        `${s.lat.length} leases by ${CLIENTS} clients, ${s.waited} of them Pending at first (${at}: ${base.waited} of ${base.lat.length}); ${vs}`),
      cost(`${scale} ${s.n}: lease create→Ready p99`, percentile(s.lat, 0.99), percentile(base.lat, 0.99), "ms", vs),
      rate(`${scale} ${s.n}: leases/s`, s.leasesPerSecond, base.leasesPerSecond, "leases/s", `create, Ready, release, ${CLIENTS} clients in a loop; ${vs}`),
      cost(`${scale} ${s.n}: controller CPU`, s.cpu, base.cpu, "%",
        `of one core during the churn; idle with the exporters up ${s.idleCpu.toFixed(1)} % (${at}: ${base.idleCpu.toFixed(1)} %); ${vs}`),
      // CPU time is what other load on a shared machine disturbs least: the steadiest sign of work per lease growing with N.
      cost(`${scale} ${s.n}: controller CPU per lease`, s.cpuPerLease, base.cpuPerLease, "ms", `CPU time during the churn / leases; ${vs}; ${fleet}`),
    );
  }
  return out;
}
