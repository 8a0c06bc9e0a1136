/**
 * Lease options as people give them, checked once for the CLI's flags and the
 * library's options alike: durations (`30m`, `PT1H`, milliseconds from code),
 * begin times, and what to lease. Mistakes are usage errors (exit 2) naming the
 * flag or option and the value received.
 */
import { parseDuration } from "../common/duration.ts";
import { UserError } from "../common/errors.ts";

/** What to lease: by selector or exporter name, or an existing lease to reuse. */
export interface LeaseTarget {
  selector?: string;
  exporterName?: string;
  /** Reuse this lease instead of creating one. */
  leaseName?: string;
  durationMs: number;
  /** With exporterName: lease it even when disabled or failing its health check (to investigate it). */
  allowDisabled?: boolean;
}

/** The duration of a lease: positive, from text (`30m`) or, from code, milliseconds. */
export function leaseDuration(value: string | number, flag: string): number {
  let ms: number;
  if (typeof value === "number") {
    ms = value;
  } else {
    try {
      ms = parseDuration(value, flag);
    } catch (e) {
      throw new UserError((e as Error).message, 2);
    }
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new UserError(`'${flag}' must be longer than zero: got '${value}'`, 2);
  return ms;
}

/** An ISO-8601 time (`2026-12-24T08:00:00Z`, or local time without a zone), or undefined when not given. */
export function beginTime(value: string | Date | undefined, flag: string): Date | undefined {
  if (value === undefined || value === "") return undefined;
  const t = value instanceof Date ? value : /^\d{4}-\d{2}-\d{2}/.test(value.trim()) ? new Date(value.trim()) : new Date(NaN);
  if (Number.isNaN(t.getTime())) throw new UserError(`'${flag}' must be an ISO-8601 time such as 2026-12-24T08:00:00Z: got '${String(value)}'`, 2);
  return t;
}

/**
 * The lease a shell or a script asks for. `names` are how the caller spells the
 * choices in messages (`-l SELECTOR`, `selector`…).
 */
export function leaseTarget(
  opts: { selector?: string; exporterName?: string; leaseName?: string; duration: string | number; allowDisabled?: boolean },
  names: { selector: string; exporter: string; lease?: string; duration: string },
): LeaseTarget {
  const durationMs = leaseDuration(opts.duration, names.duration);
  if (!opts.selector && !opts.exporterName && !opts.leaseName) {
    const choices = [names.selector, names.exporter, ...(names.lease ? [names.lease] : [])];
    throw new UserError(`give ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`, 2);
  }
  return { selector: opts.selector, exporterName: opts.exporterName, leaseName: opts.leaseName, durationMs, allowDisabled: opts.allowDisabled };
}
