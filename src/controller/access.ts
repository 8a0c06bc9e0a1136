/**
 * What the namespace's ExporterAccessPolicies grant one client on one exporter, as
 * upstream's lease reconciler reads them: with no policy at all everyone may lease
 * everything at priority 0; once there is one, an exporter is open to a client only
 * through a rule of a policy that selects the exporter and whose `from` selects the
 * client. Where several rules admit, the highest priority wins, and a non-spot rule
 * beats a spot one of the same priority (a spot lease is the weaker claim).
 */
import type { AccessPolicy, AccessRule } from "../common/access-policy.ts";
import { formatSelector, type Labels, matches } from "../common/selector.ts";

export interface Access {
  priority: number;
  spotAccess: boolean;
  /** The longest lease the granting rule allows; undefined for no limit. */
  maximumDurationMs?: number;
  /** `policy-name` or `policy-name (rule description)`, for messages; empty without policies. */
  grantedBy: string;
}

/** Everyone, everything: a namespace without policies. */
export const OPEN_ACCESS: Access = Object.freeze({ priority: 0, spotAccess: false, grantedBy: "" });

const ruleName = (policy: AccessPolicy, rule: AccessRule) => (rule.description ? `${policy.name} (${rule.description})` : policy.name);

/** Better first: higher priority, then non-spot, then the longer (or no) duration limit. */
function better(a: Access, b: Access): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.spotAccess !== b.spotAccess) return !a.spotAccess;
  return (a.maximumDurationMs ?? Infinity) > (b.maximumDurationMs ?? Infinity);
}

/** The best access `policies` give a client with `clientLabels` to an exporter with `exporterLabels`; null for none. */
export function accessFor(policies: readonly AccessPolicy[], clientLabels: Labels, exporterLabels: Labels): Access | null {
  if (policies.length === 0) return OPEN_ACCESS;
  let best: Access | null = null;
  for (const policy of policies) {
    if (!matches(policy.exporterSelector, exporterLabels)) continue;
    for (const rule of policy.policies) {
      if (!rule.from.some((s) => matches(s, clientLabels))) continue;
      const access: Access = {
        priority: rule.priority,
        spotAccess: rule.spotAccess,
        maximumDurationMs: rule.maximumDurationMs,
        grantedBy: ruleName(policy, rule),
      };
      if (!best || better(access, best)) best = access;
    }
  }
  return best;
}

/**
 * Why a client is refused exporters it asked for, in words for its lease's condition:
 * the policies that select those exporters, and whom they admit.
 */
export function refusalMessage(policies: readonly AccessPolicy[], client: string, matchingExporters: readonly { name: string; labels: Labels }[]): string {
  const relevant = policies.filter((p) => matchingExporters.some((e) => matches(p.exporterSelector, e.labels)));
  const n = matchingExporters.length;
  const these = n === 1 ? `exporter ${matchingExporters[0]!.name}` : `the ${n} matching exporters (e.g. ${matchingExporters[0]!.name})`;
  if (relevant.length === 0) {
    return `No access policy covers ${these}, so no client may lease ${n === 1 ? "it" : "them"}; policies exist in this namespace (${policies.map((p) => p.name).join(", ")})`;
  }
  const whom = relevant.flatMap((p) =>
    p.policies.map((r) => `${ruleName(p, r)} admits ${r.from.length ? r.from.map((s) => formatSelector(s) || "every client").join(" or ") : "nobody"}`),
  );
  return `No access policy admits client ${client} to ${these}: ${whom.join("; ")}`;
}
