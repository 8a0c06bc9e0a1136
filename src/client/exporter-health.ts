/**
 * An exporter's maintenance and health (jmp's own fields of the Exporter message,
 * see health.proto) as listings show them. Upstream's controller sends neither:
 * the columns stay empty then.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type ExporterHealth, HealthState } from "../gen/jumpstarter/v1/health_pb.ts";

export interface HealthView {
  state: "checking" | "healthy" | "unhealthy";
  message: string;
  checkedAt?: Date;
  /** An admin enabled the exporter after this failure: it takes leases anyway. */
  overridden: boolean;
}

const STATES: Partial<Record<HealthState, HealthView["state"]>> = {
  [HealthState.CHECKING]: "checking",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.UNHEALTHY]: "unhealthy",
};

/** Undefined when the exporter runs no health check. */
export function healthView(h: ExporterHealth | undefined): HealthView | undefined {
  const state = h && STATES[h.state];
  if (!h || !state) return undefined;
  return { state, message: h.message, checkedAt: h.checkedAt ? timestampDate(h.checkedAt) : undefined, overridden: h.overridden };
}

/** The HEALTH column: `ok`, `checking`, `failing: why`, or `failing (overridden): why`. */
export function healthColumn(h: HealthView | undefined): string {
  if (!h) return "";
  if (h.state === "checking") return "checking";
  if (h.state === "healthy") return h.message ? `ok (${h.message})` : "ok";
  return `${h.overridden ? "failing, enabled by an admin" : "failing"}: ${h.message}`;
}

/** The ENABLED column: `yes`, or `no: why`. */
export function enabledColumn(enabled: boolean, reason: string): string {
  return enabled ? "yes" : `no${reason ? `: ${reason}` : ""}`;
}
