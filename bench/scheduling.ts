/**
 * One scheduling pass over a long queue (issue 17): N exporters in 10 kinds, N leases
 * of 100 clients queued for them, on a real SQLite file. Two passes are measured:
 * the one that places all N, and, with N more queued behind them and nothing free,
 * the pass every later change runs while the queue waits. The floor is reading the
 * pass's inputs (the open leases and the exporters) from the same store: what any
 * pass must pay before it decides anything.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAccessPolicy } from "../src/common/access-policy.ts";
import { serveNamespace } from "../src/controller/queue.ts";
import { SqliteStore } from "../src/controller/store/sqlite.ts";
import { StateTransaction } from "../src/controller/transaction.ts";
import { ExporterStatus } from "../src/gen/jumpstarter/v1/common_pb.ts";
import { cost, median, type Options, type Result } from "./lib.ts";

const NS = "default";

function fill(store: SqliteStore, n: number, prefix: string): void {
  store.transactionSync((w) => {
    for (let i = 0; i < n; i++) {
      w.createLease({
        namespace: NS, name: `${prefix}${i}`, client: `c${i % 100}`, selector: `board=b${i % 10}`, duration: 600_000,
        allowDisabled: false, tags: {}, context: {}, released: false, ended: false, conditions: [], createdAt: i,
      });
    }
  });
}

async function once(n: number, withPolicies: boolean): Promise<{ placeAll: number; waiting: number; read: number }> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-sched-"));
  const store = SqliteStore.open(dir);
  try {
    store.transactionSync((w) => {
      for (let c = 0; c < 100; c++) w.createClient({ namespace: NS, name: `c${c}`, uid: `u${c}`, labels: { team: `t${c % 5}` }, tokenId: "t", createdAt: 0 });
      for (let i = 0; i < n; i++) {
        w.createExporter({
          namespace: NS, name: `e${String(i).padStart(6, "0")}`, uid: `x${i}`, labels: { board: `b${i % 10}` }, enabled: true, disabledReason: "",
          health: null, tokenId: "t", devices: [], status: ExporterStatus.AVAILABLE, statusMessage: "", registered: true, lastSeen: 0,
          leaseName: null, createdAt: 0,
        });
      }
      if (withPolicies) {
        w.putPolicy(parseAccessPolicy({
          apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterAccessPolicy", metadata: { name: "teams" },
          spec: { policies: [0, 1, 2, 3, 4].map((t) => ({ priority: t, from: [{ clientSelector: { matchLabels: { team: `t${t}` } } }] })) },
        }, NS));
      }
    });
    const ctx = { store, now: () => Date.now(), isOnline: () => true };
    const pass = () => {
      const t = performance.now();
      store.transactionSync((w) => serveNamespace(ctx, new StateTransaction(w), NS));
      return performance.now() - t;
    };
    fill(store, n, "a");
    const placeAll = pass();
    fill(store, n, "b");
    pass(); // the first one also writes each waiting lease's Pending condition
    const waiting = pass();
    const t = performance.now();
    store.listLeases(NS, { onlyActive: true });
    store.scanExporters(NS);
    const read = performance.now() - t;
    return { placeAll, waiting, read };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function schedulingPass(opts: Options): Promise<Result[]> {
  const n = opts.quick ? 1_000 : 10_000;
  const rounds = opts.quick ? 1 : 3;
  const out: Result[] = [];
  for (const policies of [false, true]) {
    const runs = [];
    for (let i = 0; i < rounds; i++) runs.push(await once(n, policies));
    const read = median(runs.map((r) => r.read));
    const label = `schedule ${n}${policies ? " +policy" : ""}`;
    const note = `${n} exporters, ${n} leases of 100 clients${policies ? ", one policy of 5 priorities" : ""}; floor: reading the pass's inputs`;
    out.push(cost(`${label}: place all`, median(runs.map((r) => r.placeAll)), read, "ms", note));
    out.push(cost(`${label}: queue waits`, median(runs.map((r) => r.waiting)), read, "ms", note));
  }
  return out;
}
