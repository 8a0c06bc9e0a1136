/**
 * One log line per step of a lease's life on the controller: requested, given an
 * exporter, ended (with the reason its Ready condition gives). Each carries the
 * lease, client, exporter and namespace as keys, so `--log-format json` lets a log
 * search follow a lease from the request to its end, and on into the exporter's and
 * the router's lines, which carry the same keys.
 */
import type { Logger } from "../common/log.ts";
import { endReason } from "./metrics.ts";
import type { Lease } from "./model.ts";

type Step = "pending" | "ready";

export function logLeaseSteps(state: { on(event: "lease", fn: (lease: Lease) => void): () => void }, log: Logger): () => void {
  /** The step last logged of each open lease. */
  const logged = new Map<string, Step>();
  return state.on("lease", (lease) => {
    const k = `${lease.namespace}/${lease.name}`;
    const keyed = log.with({ namespace: lease.namespace, lease: lease.name, client: lease.client, exporter: lease.exporter });
    const was = logged.get(k);
    if (was === undefined && !lease.ended) {
      const what = lease.exporterName ? `exporter ${lease.exporterName}` : `'${lease.selector}'`;
      keyed.info(`lease ${lease.name}: requested by ${lease.client} for ${what}`);
      logged.set(k, "pending");
    }
    if (lease.exporter !== undefined && lease.effectiveBeginTime !== undefined && logged.get(k) !== "ready" && !lease.ended) {
      keyed.info(`lease ${lease.name}: ${lease.client} holds exporter ${lease.exporter}`);
      logged.set(k, "ready");
    }
    if (lease.ended) {
      keyed.info(`lease ${lease.name}: ended (${endReason(lease)})`);
      logged.delete(k);
    }
  });
}
