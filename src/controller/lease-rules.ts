/**
 * Lease rules, matching upstream's controller (and the Kubernetes rules its objects
 * inherit): names, times and their updates, tags, context, expiry and lease labels.
 * Checks throw an InvalidArgument ControllerError naming the field and what was expected.
 */
import {
  equalityLabels,
  labelKeyProblem,
  labelValueProblem,
  parseSelector,
  type Selector,
  SelectorError,
  validateLabels,
} from "../common/selector.ts";
import { failedPrecondition, invalidArgument } from "./errors.ts";
import type { Labels, Lease, LeaseUpdate } from "./model.ts";

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const MAX_TAGS = 10;
export const MAX_CONTEXT_ENTRIES = 8;
export const MAX_CONTEXT_KEY = 32;
export const MAX_CONTEXT_VALUE = 64;

/** Client, exporter and namespace names are DNS labels, as Kubernetes object names. */
export function validateDnsLabel(what: string, name: string): void {
  if (name.length === 0 || name.length > 63 || !DNS_LABEL_RE.test(name)) {
    throw invalidArgument(
      `${what} '${name}' must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
}

/** Lease ids given by clients become object names: DNS subdomains (UUIDs fit). */
export function validateLeaseId(id: string): void {
  if (id.length > 253 || !DNS_SUBDOMAIN_RE.test(id)) {
    throw invalidArgument(
      `lease id '${id}' must be at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`,
    );
  }
}

export interface LeaseTimes {
  beginTime?: number;
  endTime?: number;
  duration?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Completes and checks requested times as upstream does: begin + end give the
 * duration; end + duration give the begin; all three must agree; the duration must be
 * positive; an end time alone is not enough. A duration of 0 counts as unset.
 */
export function resolveTimes(input: LeaseTimes): LeaseTimes & { duration: number } {
  for (const [field, value] of Object.entries(input)) {
    if (value !== undefined && !Number.isFinite(value)) throw invalidArgument(`${field} must be a finite number, got ${value}`);
  }
  let { beginTime, endTime, duration } = input;
  if (duration === 0) duration = undefined;
  if (beginTime !== undefined && endTime !== undefined) {
    const span = endTime - beginTime;
    if (span <= 0) throw invalidArgument(`end time ${iso(endTime)} must be after begin time ${iso(beginTime)}`);
    if (duration !== undefined && duration !== span) {
      throw invalidArgument(
        `duration ${duration} ms conflicts with begin time ${iso(beginTime)} and end time ${iso(endTime)} (${span} ms apart)`,
      );
    }
    duration = span;
  } else if (endTime !== undefined && duration !== undefined && duration > 0) {
    beginTime = endTime - duration;
  }
  if (duration === undefined) {
    throw invalidArgument("duration is required: give a duration, or both a begin time and an end time");
  }
  if (duration <= 0) throw invalidArgument(`duration must be positive, got ${duration} ms`);
  return { beginTime, endTime, duration };
}

/** Tags become labels `metadata.jumpstarter.dev/<key>` upstream, hence label rules. */
export function validateTags(tags: Record<string, string>): void {
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) throw invalidArgument(`a lease takes at most ${MAX_TAGS} tags, got ${entries.length}`);
  for (const [key, value] of entries) {
    if (key.includes("/")) throw invalidArgument(`tag key '${key}' must be a plain name without '/'`);
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem) throw invalidArgument(`tag '${key}': ${problem}`);
  }
}

export function validateContext(context: Record<string, string>): void {
  const entries = Object.entries(context);
  if (entries.length > MAX_CONTEXT_ENTRIES) {
    throw invalidArgument(`a lease takes at most ${MAX_CONTEXT_ENTRIES} context entries, got ${entries.length}`);
  }
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > MAX_CONTEXT_KEY) {
      throw invalidArgument(`context key '${key}' must be 1-${MAX_CONTEXT_KEY} characters`);
    }
    if (value.length > MAX_CONTEXT_VALUE) {
      throw invalidArgument(`context value of '${key}' must be at most ${MAX_CONTEXT_VALUE} characters, got ${value.length}`);
    }
  }
}

/** The presence timeouts a client may ask for: shorter would release a lease over one slow poll, longer is what duration is for. */
export const PRESENCE_TIMEOUT_RANGE_S = { min: 5, max: 3600 } as const;

export function validatePresenceTimeout(ms: number): void {
  const { min, max } = PRESENCE_TIMEOUT_RANGE_S;
  if (!Number.isInteger(ms / 1000) || ms < min * 1000 || ms > max * 1000) {
    throw invalidArgument(`a presence timeout must be a whole number of seconds from ${min} to ${max}, got ${ms / 1000} s`);
  }
}

/**
 * When the lease ends by itself: the requested end; else the requested begin plus the
 * duration; else, once it started, the effective begin plus the duration. Undefined
 * for a lease that has neither started nor a fixed window.
 */
export function leaseExpiresAt(lease: Pick<Lease, "endTime" | "beginTime" | "effectiveBeginTime" | "duration">): number | undefined {
  if (lease.endTime !== undefined) return lease.endTime;
  if (lease.duration === undefined) return undefined;
  const start = lease.beginTime ?? lease.effectiveBeginTime;
  return start === undefined ? undefined : start + lease.duration;
}

/**
 * The requested times after an UpdateLease. The begin time changes only before the
 * lease started. A new duration drops a requested end (the end then follows begin +
 * duration); a new end without a duration recomputes the duration from the requested
 * or effective begin; a new begin alone keeps the duration and moves the end with it.
 */
export function updatedTimes(lease: Lease, patch: LeaseUpdate): LeaseTimes {
  if (patch.beginTime !== undefined && lease.exporter !== undefined && patch.beginTime !== lease.beginTime) {
    throw failedPrecondition(`cannot change the begin time of lease '${lease.name}': it has already started`);
  }
  const t: LeaseTimes = { beginTime: lease.beginTime, endTime: lease.endTime, duration: lease.duration };
  if (patch.beginTime !== undefined) {
    t.beginTime = patch.beginTime;
    if (patch.endTime === undefined) t.endTime = undefined;
  }
  if (patch.duration !== undefined) {
    t.duration = patch.duration;
    if (patch.endTime === undefined) t.endTime = undefined;
  }
  if (patch.endTime !== undefined) {
    t.endTime = patch.endTime;
    const start = t.beginTime ?? lease.effectiveBeginTime;
    if (patch.duration === undefined && start !== undefined) t.duration = patch.endTime - start;
  }
  const resolved = resolveTimes(t);
  return { beginTime: resolved.beginTime, endTime: resolved.endTime, duration: resolved.duration };
}

/** Upstream's prefix for tags when they are stored as lease labels. */
export const TAG_LABEL_PREFIX = "metadata.jumpstarter.dev/";

/** Parses a selector, turning a syntax error into InvalidArgument. */
export function parseOrReject(text: string): Selector {
  try {
    return parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) throw invalidArgument(err.message, err);
    throw err;
  }
}

/** Checks a label set, turning a problem into InvalidArgument. */
export function checkLabels(labels: Labels, what: string): void {
  try {
    validateLabels(labels, what);
  } catch (err) {
    if (err instanceof SelectorError) throw invalidArgument(err.message, err);
    throw err;
  }
}

/** The labels upstream puts on a lease object, which ListLeases' filter matches. */
export function leaseLabels(lease: Lease): Labels {
  const labels: Labels = {};
  try {
    Object.assign(labels, equalityLabels(parseSelector(lease.selector)));
  } catch {
    // A stored selector this build cannot parse has no labels to offer.
  }
  for (const [k, v] of Object.entries(lease.tags)) labels[TAG_LABEL_PREFIX + k] = v;
  return labels;
}
