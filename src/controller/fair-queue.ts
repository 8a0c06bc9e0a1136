/**
 * The order in which pending leases choose an exporter in one scheduling pass:
 * priority first (from the access policy that admits them); within a priority the
 * client holding fewer leases goes first, then the one whose last lease began longest
 * ago, then the oldest request. The order is worked out as the pass goes, because each
 * lease placed changes its client's share: with three boards free, a CI client with
 * 200 leases queued and a person with one get boards in turns, not 200 then one.
 *
 * With a single client, or clients holding alike, this is the FIFO queue (`seq` order)
 * the controller always had.
 */
import type { Lease } from "./model.ts";

export interface QueuedLease {
  lease: Lease;
  priority: number;
}

/** What a client holds when the pass starts. */
export interface ClientShare {
  held: number;
  /** When its most recent lease began (epoch ms); 0 when none. */
  lastBeganAt: number;
}

type Key = readonly [number, number, number, number];

interface Group {
  client: string;
  priority: number;
  /** This client's leases at this priority, oldest first; `next` is the head. */
  leases: QueuedLease[];
  next: number;
  key: Key;
}

const less = (a: Key, b: Key) => {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
};

export class FairQueue {
  private readonly heap: Group[] = [];
  private readonly shares: Map<string, ClientShare>;

  constructor(pending: readonly QueuedLease[], shares: ReadonlyMap<string, ClientShare>) {
    this.shares = new Map([...shares].map(([k, v]) => [k, { ...v }]));
    const groups = new Map<string, Group>();
    for (const q of [...pending].sort((a, b) => a.lease.seq - b.lease.seq)) {
      const id = `${q.priority}\u0000${q.lease.client}`;
      let g = groups.get(id);
      if (!g) groups.set(id, (g = { client: q.lease.client, priority: q.priority, leases: [], next: 0, key: [0, 0, 0, 0] }));
      g.leases.push(q);
    }
    for (const g of groups.values()) {
      g.key = this.keyOf(g);
      this.push(g);
    }
  }

  /** The lease to place next, or undefined when every one has had its turn. */
  next(): QueuedLease | undefined {
    for (;;) {
      const top = this.heap[0];
      if (!top) return undefined;
      // Shares only grow during a pass, so a key only gets worse: a stale one is
      // put back with its new key and the top looked at again.
      const fresh = this.keyOf(top);
      if (less(top.key, fresh)) {
        this.pop();
        top.key = fresh;
        this.push(top);
        continue;
      }
      const q = top.leases[top.next++]!;
      this.pop();
      if (top.next < top.leases.length) {
        top.key = this.keyOf(top);
        this.push(top);
      }
      return q;
    }
  }

  /** The lease `next` gave was placed: its client now holds one more. */
  placed(client: string, at: number): void {
    const s = this.shares.get(client);
    if (s) {
      s.held++;
      s.lastBeganAt = at;
    } else {
      this.shares.set(client, { held: 1, lastBeganAt: at });
    }
  }

  private keyOf(g: Group): Key {
    const s = this.shares.get(g.client);
    return [-g.priority, s?.held ?? 0, s?.lastBeganAt ?? 0, g.leases[g.next]!.lease.seq];
  }

  private push(g: Group): void {
    const h = this.heap;
    h.push(g);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!less(h[i]!.key, h[parent]!.key)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!.key, h[m]!.key)) m = l;
      if (r < h.length && less(h[r]!.key, h[m]!.key)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

/** Each client's share from its open leases: how many hold an exporter, and when the latest began. */
export function sharesOf(active: readonly Lease[]): Map<string, ClientShare> {
  const out = new Map<string, ClientShare>();
  for (const l of active) {
    if (l.exporter === undefined || l.ended) continue;
    const s = out.get(l.client) ?? { held: 0, lastBeganAt: 0 };
    s.held++;
    s.lastBeganAt = Math.max(s.lastBeganAt, l.effectiveBeginTime ?? 0);
    out.set(l.client, s);
  }
  return out;
}
