/**
 * The controller's Prometheus metrics, served at GET /metrics on its own port
 * (see serveRoutes' `metrics`). Counts of what exists now (exporters, open leases,
 * the queue) are read from the state at each scrape, so they cannot drift; what
 * happened (leases created and ended, time waited, time held) is counted from the
 * state's change events as it happens.
 *
 * The reads and the event handler await what they get, so they work the same
 * whether the state answers at once or with a promise.
 */
import { CALL_BUCKETS, Counter, Gauge, Histogram, newRegistry, type Registry, type RouterStats, registerRouterMetrics, rpcMetricsInterceptor } from "../common/metrics.ts";
import type { Interceptor } from "@connectrpc/connect";
import type { RefusalReason } from "./auth.ts";
import type { Exporter, Lease } from "./model.ts";
import type { Store } from "./store/store.ts";

/** What the metrics read from the controller's state. */
export interface MetricsSource {
  on(event: "lease", fn: (lease: Lease) => void): () => void;
  listExporters(namespace: string): Exporter[] | Promise<Exporter[]>;
}

/** Seconds to hours: a lease waits from nothing to a night's queue, and is held as long. */
const LEASE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400];

export interface ControllerMetrics {
  registry: Registry;
  /** First among the Connect interceptors: counts and times every call. */
  rpc: Interceptor;
  /** For the auth interceptor's `onRefuse`. */
  refused(reason: RefusalReason): void;
  /** Starts counting from the state's events; returns the unsubscribe function. */
  watch(state: MetricsSource, store: Store): () => void;
  /** Times each outermost transaction of `store` from now on (it replaces the instance's `transaction`); returns the store. */
  timed<S extends Store>(store: S): S;
}

/**
 * `k=v,k=v` sorted by key: one label value per distinct label set. The labels an
 * exporter registers itself (`jumpstarter.dev/name`, ...) are left out: they name one
 * exporter, and would make a series per exporter instead of per kind of board.
 */
export function labelSet(labels: Record<string, string>): string {
  return Object.keys(labels).filter((k) => !k.startsWith("jumpstarter.dev/")).sort().map((k) => `${k}=${labels[k]}`).join(",");
}

/** The reason an ended lease gives in its Ready=False condition, or its terminal condition's type. */
export function endReason(lease: Lease): string {
  const ready = lease.conditions.find((c) => c.type === "Ready" && c.status === "False");
  if (ready?.reason) return ready.reason;
  const terminal = lease.conditions.find((c) => (c.type === "Unsatisfiable" || c.type === "Invalid") && c.status === "True");
  return terminal?.type ?? "Unknown";
}

export function controllerMetrics(opts: { router?: RouterStats } = {}): ControllerMetrics {
  const registry = newRegistry();
  if (opts.router) registerRouterMetrics(registry, opts.router);
  const rpc = rpcMetricsInterceptor(registry);
  const refusals = new Counter({
    name: "jmp_token_refusals_total",
    help: "Calls refused by the token check, by reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const transactions = new Histogram({
    name: "jmp_store_transaction_seconds",
    help: "Time spent in each store write transaction, including the scheduling pass it runs",
    buckets: CALL_BUCKETS,
    registers: [registry],
  });
  const created = new Counter({ name: "jmp_leases_created_total", help: "Leases created", labelNames: ["namespace"], registers: [registry] });
  const ended = new Counter({ name: "jmp_leases_ended_total", help: "Leases ended, by reason", labelNames: ["namespace", "reason"], registers: [registry] });
  const waited = new Histogram({
    name: "jmp_lease_queue_wait_seconds",
    help: "Time from a lease's request (or its requested begin) to its exporter being assigned",
    labelNames: ["namespace"],
    buckets: LEASE_BUCKETS,
    registers: [registry],
  });
  const held = new Histogram({
    name: "jmp_lease_duration_seconds",
    help: "Time a lease held its exporter, observed when the lease ends",
    labelNames: ["namespace", "reason"],
    buckets: LEASE_BUCKETS,
    registers: [registry],
  });

  let store: Store | undefined;
  let source: MetricsSource | undefined;
  new Gauge({
    name: "jmp_leases",
    help: "Open leases, by state: pending (waiting for an exporter) or active",
    labelNames: ["namespace", "state"],
    registers: [registry],
    async collect() {
      this.reset();
      if (!store) return;
      for (const lease of await store.listLeases(undefined, { onlyActive: true })) {
        this.inc({ namespace: lease.namespace, state: begun(lease) ? "active" : "pending" });
      }
    },
  });
  new Gauge({
    name: "jmp_lease_queue_length",
    help: "Leases waiting for an exporter",
    labelNames: ["namespace"],
    registers: [registry],
    async collect() {
      this.reset();
      if (!store) return;
      for (const lease of await store.listLeases(undefined, { onlyActive: true })) {
        if (!begun(lease)) this.inc({ namespace: lease.namespace });
      }
    },
  });
  // One read of the exporters fills the four gauges: each one's collect waits for the
  // read under way (the registry collects its metrics concurrently).
  let reading: Promise<void> | undefined;
  const fill = () => (reading ??= readExporters().finally(() => (reading = undefined)));
  const gauge = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["namespace", "labels"], registers: [registry], collect: fill });
  const exporterGauges = {
    total: gauge("jmp_exporters", "Exporters, by namespace and label set (leaving out the jumpstarter.dev/ labels each registers)"),
    online: gauge("jmp_exporters_online", "Exporters online now"),
    leased: gauge("jmp_exporters_leased", "Exporters held by a lease now"),
    disabled: gauge("jmp_exporters_disabled", "Exporters an admin disabled"),
  };
  async function readExporters(): Promise<void> {
    const found: Exporter[] = [];
    if (store && source) {
      const namespaces = new Set((await store.listExporters()).map((e) => e.namespace));
      for (const namespace of namespaces) found.push(...(await source.listExporters(namespace)));
    }
    for (const g of Object.values(exporterGauges)) g.reset();
    for (const e of found) {
      const labels = { namespace: e.namespace, labels: labelSet(e.labels) };
      exporterGauges.total.inc(labels);
      // Every series of a label set exists, at 0 when none is in that state.
      exporterGauges.online.inc(labels, e.online ? 1 : 0);
      exporterGauges.leased.inc(labels, e.leaseName !== null ? 1 : 0);
      exporterGauges.disabled.inc(labels, e.enabled ? 0 : 1);
    }
  }

  return {
    registry,
    rpc,
    refused: (reason) => refusals.inc({ reason }),
    watch(state, s) {
      store = s;
      source = state;
      /** Open leases already counted as assigned: each is observed once. */
      const assigned = new Set<string>();
      const seen = new Set<string>();
      void (async () => {
        for (const lease of await s.listLeases(undefined, { onlyActive: true })) {
          seen.add(keyOf(lease));
          if (begun(lease)) assigned.add(keyOf(lease));
        }
      })();
      return state.on("lease", (lease) => {
        const k = keyOf(lease);
        const ns = { namespace: lease.namespace };
        if (!seen.has(k)) {
          seen.add(k);
          created.inc(ns);
        }
        if (begun(lease) && !assigned.has(k)) {
          assigned.add(k);
          const from = Math.max(lease.createdAt, lease.beginTime ?? 0);
          waited.observe(ns, Math.max(0, lease.effectiveBeginTime! - from) / 1000);
        }
        if (lease.ended) {
          const reason = endReason(lease);
          ended.inc({ ...ns, reason });
          if (assigned.has(k) && lease.effectiveBeginTime !== undefined && lease.effectiveEndTime !== undefined) {
            held.observe({ ...ns, reason }, Math.max(0, lease.effectiveEndTime - lease.effectiveBeginTime) / 1000);
          }
          assigned.delete(k);
          seen.delete(k);
        }
      });
    },
    timed(s) {
      let depth = 0;
      const transaction = s.transaction.bind(s);
      const wrapped = ((fn: Parameters<Store["transaction"]>[0]) => {
        // A transaction inside a running one joins it: only the outermost is timed.
        if (depth > 0) return transaction(fn);
        depth++;
        const start = performance.now();
        const observe = () => {
          depth--;
          transactions.observe((performance.now() - start) / 1000);
        };
        let result: unknown;
        try {
          result = transaction(fn);
        } catch (e) {
          observe();
          throw e;
        }
        if (result instanceof Promise) return result.finally(observe);
        observe();
        return result;
      }) as Store["transaction"];
      // An own property over the class's method: every other call goes straight to the store.
      s.transaction = wrapped;
      return s;
    },
  };
}

const keyOf = (lease: Lease) => `${lease.namespace}/${lease.name}`;
const begun = (lease: Lease) => lease.exporter !== undefined && lease.effectiveBeginTime !== undefined;
