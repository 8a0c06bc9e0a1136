/**
 * The controller after a long run: the same churn as the scale benchmark, on a data
 * dir that holds what weeks of use leave behind (the audit log at its default cap of
 * 100 000 entries, 30 000 ended leases), against a fresh one, in the same run.
 *
 * The scale benchmark starts from an empty file and churns for seconds, so it never
 * meets a full audit log; a controller in a lab lives there after ~33 000 leases.
 * What grows with history (a table walked, pages that no longer fit SQLite's cache)
 * shows as this ratio.
 */
import { SqliteStore } from "../src/controller/store/sqlite.ts";
import { uuidv7 } from "../src/controller/ids.ts";
import { DEFAULT_AUDIT_RETENTION } from "../src/controller/audit.ts";
import { Lab } from "../test/distributed/lab.ts";
import { cost, percentile, type Options, type Result } from "./lib.ts";
import { CLIENTS, churn, churnClients, measured, settled } from "./scale.ts";
import { spawnSimExporters } from "./sim-exporters.ts";

const ENDED_LEASES = 30_000;
const EXPORTERS = 200;

interface Run {
  cpuPerLease: number;
  p99: number;
  leases: number;
}

/** Writes the history through the store's own code, beside the running controller (WAL: both may write). */
function fillHistory(dataDir: string): void {
  const store = SqliteStore.open(dataDir);
  try {
    const t0 = Date.now() - 7 * 24 * 3600_000;
    for (let batch = 0; batch < ENDED_LEASES; batch += 1000) {
      store.transactionSync((w) => {
        for (let i = batch; i < batch + 1000; i++) {
          const at = t0 + i * 10;
          const name = uuidv7(at);
          w.createLease({
            namespace: "default", name, client: `user-${i % 20}`, selector: `sim=yes,pool=${i % 10}`, allowDisabled: false,
            tags: {}, context: {}, exporter: `sim-${i % EXPORTERS}`, effectiveBeginTime: at, effectiveEndTime: at + 5,
            released: true, ended: true, createdAt: at,
            conditions: [{ type: "Ready", status: "False", reason: "Released", message: "released by its client", lastTransitionTime: at + 5 }],
          });
          // Three entries a lease, as the churn writes (create, acquire, release).
          for (const action of ["lease.create", "lease.acquire", "lease.release"] as const) {
            w.appendAudit({ at, namespace: "default", action, actor: `client/user-${i % 20}`, lease: name, client: `user-${i % 20}`, exporter: `sim-${i % EXPORTERS}`, reason: "Released", detail: "released by its client after 0.01 s" });
          }
        }
      });
    }
    // The rest of the log: a lab's other entries (tokens refused, admins' changes).
    const more = DEFAULT_AUDIT_RETENTION.maxEntries - 3 * ENDED_LEASES;
    for (let batch = 0; batch < more; batch += 5000) {
      store.transactionSync((w) => {
        for (let i = batch; i < Math.min(more, batch + 5000); i++) {
          w.appendAudit({ at: t0 + i, namespace: "default", action: "token.refuse", actor: "unknown", reason: "expired", detail: "the token expired" });
        }
      });
    }
  } finally {
    store.close();
  }
}

async function churnOn(history: boolean, churnMs: number): Promise<Run> {
  const lab = await Lab.start();
  try {
    const pid = lab.controller.pid;
    if (history) fillHistory(lab.dataDir);
    const clients = await churnClients(lab.dataDir, "history");
    const sim = await spawnSimExporters(["--data-dir", lab.dataDir, "--count", String(EXPORTERS), "--start", "0"], 30_000 + 15 * EXPORTERS);
    try {
      await settled(pid);
      // Warms the JIT, and lets the fresh side's log grow as the other's did not need to.
      await churn(clients, churnMs / 2);
      const run = await measured(pid, () => churn(clients, churnMs));
      return { cpuPerLease: (1000 * run.cpuSeconds) / run.value.lat.length, p99: percentile(run.value.lat, 0.99), leases: run.value.lat.length };
    } finally {
      await sim.stop();
      await settled(pid);
    }
  } finally {
    await lab.close();
  }
}

export async function controllerHistory({ quick }: Options): Promise<Result[]> {
  const churnMs = quick ? 2000 : 10_000;
  const fresh = await churnOn(false, churnMs);
  const aged = await churnOn(true, churnMs);
  const what = `${EXPORTERS} exporters, ${CLIENTS} clients; the data dir holds ${DEFAULT_AUDIT_RETENTION.maxEntries} audit entries and ${ENDED_LEASES} ended leases; floor = the same on a fresh data dir`;
  return [
    cost("controller with history: CPU per lease", aged.cpuPerLease, fresh.cpuPerLease, "ms", `${aged.leases} leases against ${fresh.leases}; ${what}`),
    cost("controller with history: create→Ready p99", aged.p99, fresh.p99, "ms", what),
  ];
}
