/**
 * A lab whose controller is `jmp controller run --backend kubernetes` replicas (dist/jmp)
 * on the API server double (test/kube-apiserver), behind a TCP balancer on the lab's
 * port standing in for the Kubernetes Service: everything else (admin, exporters,
 * clients) is the distributed lab's, through replica 0's data dir.
 */
import * as net from "node:net";
import { join } from "node:path";
import { eventually } from "../../src/api/eventually.ts";
import { type KubeApiServer, startKubeApiServer } from "../kube-apiserver/server.ts";
import { freePort, tcpAccepts } from "../helpers.ts";
import { Lab, type Proc } from "./lab.ts";

export const NS = "default";
export const LEASES = "leases.jumpstarter.dev";

/**
 * RBAC rules for the controller's user allowing everything it writes except leases'
 * status: a lease write then stops after its spec (main resource) part, as one cut by
 * a SIGKILL between the two does, but at will.
 */
export const ALL_BUT_LEASE_STATUS = [{
  apiGroups: ["*"],
  resources: ["clients", "clients/status", "exporters", "exporters/status", "leases", "exporteraccesspolicies", "exporteraccesspolicies/status", "configmaps", "secrets"],
  verbs: ["*"],
}];

/**
 * A Service in front of the replicas: it probes each one's readiness (GET /readyz, as
 * the Deployment's readinessProbe does, every 250 ms) and sends each new connection to
 * the next ready replica in turn, or to any that accepts while none is ready.
 */
async function balancer(port: number, targets: number[]): Promise<net.Server & { stopProbing(): void }> {
  let next = 0;
  const ready = new Set<number>();
  const probe = async (target: number) => {
    try {
      const r = await fetch(`https://127.0.0.1:${target}/readyz`, { tls: { rejectUnauthorized: false }, signal: AbortSignal.timeout(1000) } as RequestInit);
      if (r.status === 200) ready.add(target);
      else ready.delete(target);
    } catch {
      ready.delete(target);
    }
  };
  const probing = setInterval(() => void Promise.all(targets.map(probe)), 250);
  const server = net.createServer((client) => {
    client.pause();
    const start = next++;
    const order = [...targets.keys()].map((i) => targets[(start + i) % targets.length]!);
    const candidates = [...order.filter((t) => ready.has(t)), ...order.filter((t) => !ready.has(t))];
    const tryAt = (i: number) => {
      if (i >= candidates.length) return client.destroy();
      const upstream = net.connect(candidates[i]!, "127.0.0.1");
      upstream.once("error", () => tryAt(i + 1));
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      });
    };
    tryAt(0);
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return Object.assign(server, { stopProbing: () => clearInterval(probing) });
}

export class KubeLab extends Lab {
  api!: KubeApiServer;
  lb!: net.Server & { stopProbing(): void };
  readonly kubeconfig = join(this.dir.path, "kubeconfig");
  readonly replicas: Proc[] = [];
  readonly replicaPorts: number[] = [];
  replicaCount = 2;

  /** `replicas` controllers (default 2) behind one balancer on the lab's port. */
  static async startKube(opts: { replicas?: number } = {}): Promise<KubeLab> {
    const lab = new KubeLab();
    lab.replicaCount = opts.replicas ?? 2;
    try {
      lab.port = await freePort();
      await lab.startController();
    } catch (e) {
      await lab.close();
      throw e;
    }
    return lab;
  }

  override async startController(): Promise<Proc> {
    this.api ??= await startKubeApiServer();
    this.api.writeKubeconfig(this.kubeconfig, { namespace: NS });
    while (this.replicaPorts.length < this.replicaCount) this.replicaPorts.push(await freePort());
    this.lb ??= await balancer(this.port, this.replicaPorts);
    for (const i of this.replicaPorts.keys()) this.replicas.push(await this.spawnReplica(i));
    this.controller = this.replicas[0]!;
    await eventually(() => Bun.file(join(this.dataDir, "admin.yaml")).size > 0 || Promise.reject(new Error("no admin.yaml")), { what: "admin.yaml", interval: 20, timeout: 15_000 });
    return this.controller;
  }

  /** Replica `i` (which must have exited) started again on its port and data dir: it comes back as a standby. */
  async restartReplica(i: number): Promise<Proc> {
    const old = this.replicas[i]!;
    if (old.exitCode === null) throw new Error(`replica ${i} is still running`);
    this.procs.delete(old);
    const p = await this.spawnReplica(i);
    this.replicas[i] = p;
    if (this.controller === old) this.controller = p;
    return p;
  }

  private async spawnReplica(i: number): Promise<Proc> {
    const port = this.replicaPorts[i]!;
    const p = this.spawn(`replica ${i}`, [
      "controller", "run", "--backend", "kubernetes", "--kubeconfig", this.kubeconfig,
      "--data-dir", i === 0 ? this.dataDir : `${this.dataDir}-${i}`, "--listen", `127.0.0.1:${port}`, "--advertise", this.endpoint,
    ]);
    await eventually(() => tcpAccepts(port), { what: `replica ${i} to listen`, interval: 20, timeout: 20_000, signal: p.running });
    return p;
  }

  leader(): Proc | undefined {
    const leading = this.replicas.filter((p) => p.exitCode === null && lastLeadership(p) === "leading");
    return leading.length === 1 ? leading[0] : undefined;
  }

  /** Open leases of the cluster that share an exporter: must always be none. */
  doubleBooked(): string[] {
    return doubleBookedIn(this.api.objects(LEASES, NS) as LeaseObject[]);
  }

  override async close(): Promise<void> {
    try {
      await super.close();
    } finally {
      this.lb?.stopProbing();
      this.lb?.close();
      await this.api?.close();
    }
  }
}

export interface LeaseObject {
  metadata: { name: string };
  spec?: { selector?: { matchLabels?: Record<string, string> } };
  status?: { ended?: boolean; exporterRef?: { name: string } };
}

/** "EXPORTER: LEASE and LEASE" for every exporter that two open leases name. */
export function doubleBookedIn(leases: LeaseObject[]): string[] {
  const holders = new Map<string, string>();
  const twice: string[] = [];
  for (const l of leases) {
    const e = l.status?.exporterRef?.name;
    if (!e || l.status?.ended) continue;
    if (holders.has(e)) twice.push(`${e}: ${holders.get(e)} and ${l.metadata.name}`);
    holders.set(e, l.metadata.name);
  }
  return twice;
}

/** What the replica said last about leading. */
function lastLeadership(p: Proc): "leading" | "not" {
  for (let i = p.lines.length - 1; i >= 0; i--) {
    const text = p.lines[i]!.text;
    if (text.includes("leading as ")) return "leading";
    if (text.includes("no longer leading")) return "not";
  }
  return "not";
}
