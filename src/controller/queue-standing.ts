/**
 * Where a pending lease stands: how many leases are ahead of it for the exporters it
 * could have, and about when one of them will be its. Worked out when asked (GetLease,
 * `jmp lease get`, a waiting `jmp shell`), by running the queue's order forward on
 * paper: each lease ahead takes the candidate exporter that frees up first and keeps
 * it for as long as leases of its selector have lasted (or asked for).
 */
import { matches, parseSelector, type Selector } from "../common/selector.ts";
import { FairQueue, sharesOf } from "./fair-queue.ts";
import { leaseExpiresAt } from "./lease-rules.ts";
import type { ExporterRecord, Lease } from "./model.ts";
import { PassAccess } from "./pass-access.ts";
import type { Store } from "./store/store.ts";

export interface QueueStanding {
  /** 1 for the next lease to be served among those wanting the same exporters. */
  position: number;
  /** About how long until it gets an exporter, in ms; undefined when nothing says (every candidate offline). */
  estimatedWaitMs?: number;
}

/** When nothing else says how long a lease will last: upstream's default lease duration. */
const FALLBACK_DURATION_MS = 30 * 60_000;
/** How many ended leases per selector the typical duration is taken from. */
const HISTORY = 50;

/** The median time that ended leases of each selector held their exporter. */
export function typicalDurations(ended: readonly Lease[]): Map<string, number> {
  const bySelector = new Map<string, number[]>();
  for (let i = ended.length - 1; i >= 0; i--) {
    const l = ended[i]!;
    if (l.effectiveBeginTime === undefined || l.effectiveEndTime === undefined) continue;
    const list = bySelector.get(l.selector) ?? [];
    if (list.length >= HISTORY) continue;
    list.push(l.effectiveEndTime - l.effectiveBeginTime);
    bySelector.set(l.selector, list);
  }
  const out = new Map<string, number>();
  for (const [selector, list] of bySelector) out.set(selector, list.sort((a, b) => a - b)[Math.floor(list.length / 2)]!);
  return out;
}

export function queueStanding(
  store: Store,
  namespace: string,
  name: string,
  now: number,
  isOnline: (e: Readonly<ExporterRecord>) => boolean,
  typical: ReadonlyMap<string, number> = new Map(),
): QueueStanding | undefined {
  const active = store.listLeases(namespace, { onlyActive: true });
  const target = active.find((l) => l.name === name);
  if (!target || target.exporter !== undefined) return undefined;
  if (target.beginTime !== undefined && target.beginTime > now) return undefined;
  const exporters = store.scanExporters(namespace);
  const access = new PassAccess(store, namespace);

  const selectors = new Map<string, Selector | null>();
  const candidates = (l: Lease): Readonly<ExporterRecord>[] => {
    let selector = selectors.get(l.selector);
    if (selector === undefined) {
      try {
        selector = parseSelector(l.selector);
      } catch {
        selector = null;
      }
      selectors.set(l.selector, selector);
    }
    if (selector === null) return [];
    return exporters.filter((e) =>
      (l.exporterName !== undefined ? e.name === l.exporterName : matches(selector, e.labels)) &&
      (e.enabled || (l.allowDisabled && l.exporterName !== undefined)) && isOnline(e) && access.of(l.client, e) !== null);
  };
  const mine = new Set(candidates(target).map((e) => e.name));

  const lasts = (l: Lease) => typical.get(l.selector) ?? l.duration ?? FALLBACK_DURATION_MS;
  const freeAt = new Map<string, number>();
  const byName = new Map(active.map((l) => [l.name, l]));
  for (const e of exporters) {
    if (e.leaseName === null) {
      freeAt.set(e.name, now);
      continue;
    }
    const holder = byName.get(e.leaseName);
    const expires = holder ? leaseExpiresAt(holder) : undefined;
    const typicalEnd = holder?.effectiveBeginTime !== undefined && typical.has(holder.selector)
      ? holder.effectiveBeginTime + typical.get(holder.selector)!
      : undefined;
    // A lease usually ends when leases like it end, and at the latest when it expires.
    const end = Math.min(expires ?? Infinity, typicalEnd !== undefined && typicalEnd > now ? typicalEnd : Infinity);
    freeAt.set(e.name, Number.isFinite(end) ? Math.max(now, end) : now + (holder ? lasts(holder) : 0));
  }

  const pending = active.filter((l) => l.exporter === undefined && (l.beginTime === undefined || l.beginTime <= now));
  const queue = new FairQueue(pending.map((lease) => ({ lease, priority: access.priority(lease, exporters) })), sharesOf(active));
  let ahead = 0;
  for (let next = queue.next(); next; next = queue.next()) {
    const l = next.lease;
    const own = l.name === target.name ? [...mine] : candidates(l).map((e) => e.name);
    let chosen: string | undefined;
    for (const e of own) if (freeAt.has(e) && (chosen === undefined || freeAt.get(e)! < freeAt.get(chosen)!)) chosen = e;
    if (l.name === target.name) {
      return { position: ahead + 1, estimatedWaitMs: chosen === undefined ? undefined : freeAt.get(chosen)! - now };
    }
    if (chosen === undefined) continue;
    if (own.some((e) => mine.has(e))) ahead++;
    const at = freeAt.get(chosen)!;
    freeAt.set(chosen, at + lasts(l));
    queue.placed(l.client, at);
  }
  return undefined;
}
