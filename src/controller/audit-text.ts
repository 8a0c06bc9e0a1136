/** The `detail` words of audit entries: what a person reading `jmp admin audit` needs to see of each change. */
import { formatDuration } from "../common/duration.ts";
import type { AuditAction } from "./audit.ts";
import type { Labels } from "./model.ts";

export function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length ? pairs.join(",") : "no labels";
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** What a new lease asked for: its selector (or none, when it names an exporter) and its times. */
export function requestText(selector: string, times: { beginTime?: number; endTime?: number; duration?: number }): string {
  const parts: string[] = [];
  if (selector) parts.push(`selector '${selector}'`);
  if (times.duration !== undefined) parts.push(`for ${formatDuration(times.duration)}`);
  if (times.beginTime !== undefined) parts.push(`from ${iso(times.beginTime)}`);
  if (times.endTime !== undefined) parts.push(`until ${iso(times.endTime)}`);
  return parts.join(" ");
}

interface Times {
  /** When the lease ends, once it can be known (it has started, or has fixed times). */
  end: number | undefined;
  duration: number | undefined;
}

/** A change of a lease's times: an extension when it now ends (or lasts) later, else an update. */
export function timesChange(before: Times, after: Times): { action: AuditAction; detail: string } {
  if (before.end !== undefined && after.end !== undefined) {
    const delta = after.end - before.end;
    return {
      action: delta > 0 ? "lease.extend" : "lease.update",
      detail: `ends at ${iso(after.end)} (was ${iso(before.end)}, ${delta >= 0 ? "+" : "-"}${formatDuration(Math.abs(delta))})`,
    };
  }
  const was = before.duration !== undefined ? formatDuration(before.duration) : "none";
  const now = after.duration !== undefined ? formatDuration(after.duration) : "none";
  const longer = (after.duration ?? 0) > (before.duration ?? 0);
  return { action: longer ? "lease.extend" : "lease.update", detail: `duration ${now} (was ${was})` };
}
