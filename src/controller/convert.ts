/** Controller records → upstream's protobuf messages. */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Exporter as ExporterMsg, ExporterSchema, type Lease as LeaseMsg, LeaseSchema } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { type ExporterHealth, ExporterHealthSchema, HealthState } from "../gen/jumpstarter/v1/health_pb.ts";
import { ConditionSchema, TimeSchema } from "../gen/jumpstarter/v1/kubernetes_pb.ts";
import type { QueueStanding } from "./queue-standing.ts";
import type { Exporter, HealthRecord, HealthReport, Lease } from "./model.ts";
import { resourceName } from "./names.ts";
import { leaseExpiresAt } from "./lease-rules.ts";

/** Labels under this prefix are the system's; upstream hides them unless asked. */
const HIDDEN_PREFIX = "jumpstarter.dev/";

export function exporterMessage(e: Exporter, showHidden = false): ExporterMsg {
  const labels = showHidden ? e.labels : Object.fromEntries(Object.entries(e.labels).filter(([k]) => !k.startsWith(HIDDEN_PREFIX)));
  const status = e.online ? e.status : ExporterStatus.OFFLINE;
  return create(ExporterSchema, {
    name: resourceName(e.namespace, "exporters", e.name),
    labels,
    online: e.online,
    status,
    statusMessage: e.statusMessage,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    health: healthMessage(e.health),
  });
}

const STATES: Record<HealthRecord["state"], HealthState> = {
  checking: HealthState.CHECKING,
  healthy: HealthState.HEALTHY,
  unhealthy: HealthState.UNHEALTHY,
};

export function healthMessage(h: HealthRecord | null): ExporterHealth | undefined {
  if (!h) return undefined;
  return create(ExporterHealthSchema, {
    state: STATES[h.state],
    message: h.message,
    checkId: h.checkId,
    checkedAt: h.checkedAt !== undefined ? timestampFromMs(h.checkedAt) : undefined,
    overridden: h.overridden,
  });
}

/**
 * What an exporter's ReportStatus says of its health check: undefined when it says
 * nothing (upstream's exporters), null when it runs none.
 */
export function healthReport(h: ExporterHealth | undefined): HealthReport | null | undefined {
  if (!h) return undefined;
  const state = (Object.keys(STATES) as HealthRecord["state"][]).find((k) => STATES[k] === h.state);
  if (!state) return null;
  return { state, message: h.message, checkId: h.checkId, checkedAt: h.checkedAt ? timestampMs(h.checkedAt) : undefined };
}

const ms = (v: number | undefined | null) => (v === undefined || v === null ? undefined : timestampFromMs(v));

/** A lease as upstream's Lease message; effective times are what happened (or will, if it runs to the end). */
export function leaseMessage(l: Lease, now = Date.now(), standing?: QueueStanding): LeaseMsg {
  const expires = leaseExpiresAt(l);
  const effectiveEnd = l.effectiveEndTime ?? (l.effectiveBeginTime !== undefined ? expires : undefined);
  const effectiveDuration = l.effectiveBeginTime !== undefined
    ? (l.effectiveEndTime ?? Math.min(now, expires ?? now)) - l.effectiveBeginTime
    : l.duration ?? 0;
  return create(LeaseSchema, {
    name: resourceName(l.namespace, "leases", l.name),
    selector: l.selector,
    duration: l.duration !== undefined ? durationFromMs(l.duration) : undefined,
    effectiveDuration: durationFromMs(Math.max(0, effectiveDuration)),
    beginTime: ms(l.beginTime),
    effectiveBeginTime: ms(l.effectiveBeginTime),
    endTime: ms(l.endTime),
    effectiveEndTime: ms(effectiveEnd),
    client: resourceName(l.namespace, "clients", l.client),
    exporter: l.exporter ? resourceName(l.namespace, "exporters", l.exporter) : undefined,
    conditions: l.conditions.map((c) => create(ConditionSchema, {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: create(TimeSchema, { seconds: BigInt(Math.floor(c.lastTransitionTime / 1000)), nanos: (c.lastTransitionTime % 1000) * 1_000_000 }),
    })),
    exporterName: l.exporterName || undefined,
    tags: l.tags,
    allowDisabled: l.allowDisabled,
    context: l.context,
    queuePosition: standing?.position,
    estimatedWait: standing?.estimatedWaitMs !== undefined ? durationFromMs(standing.estimatedWaitMs) : undefined,
    priority: l.priority,
    spotAccess: l.spotAccess ?? false,
  });
}
