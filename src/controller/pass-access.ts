/**
 * The access policies as one scheduling pass sees them: read once per pass, and each
 * answer remembered, since a pass asks about the same client and exporter many times
 * (every pending lease looks at every exporter it matches).
 */
import type { AccessPolicy } from "../common/access-policy.ts";
import { matches, parseSelector, type Selector } from "../common/selector.ts";
import { type Access, accessFor, OPEN_ACCESS, refusalMessage } from "./access.ts";
import type { ExporterRecord, Lease } from "./model.ts";
import type { Store } from "./store/store.ts";

export class PassAccess {
  private readonly policies: readonly AccessPolicy[];
  private readonly byClient = new Map<string, Map<string, Access | null>>();
  private readonly priorities = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly namespace: string,
  ) {
    this.policies = store.listPolicies(namespace);
  }

  /** True when the namespace has no policy: everyone may lease everything. */
  get open(): boolean {
    return this.policies.length === 0;
  }

  /** What the policies give `client` on `exporter`; null when nothing admits it. */
  of(client: string, exporter: Readonly<ExporterRecord>): Access | null {
    if (this.open) return OPEN_ACCESS;
    let memo = this.byClient.get(client);
    if (!memo) this.byClient.set(client, (memo = new Map()));
    if (memo.has(exporter.name)) return memo.get(exporter.name)!;
    const labels = this.store.getClient(this.namespace, client)?.labels ?? {};
    const access = accessFor(this.policies, labels, exporter.labels);
    memo.set(exporter.name, access);
    return access;
  }

  refusal(client: string, matching: readonly Readonly<ExporterRecord>[]): string {
    return refusalMessage(this.policies, client, matching);
  }

  /**
   * The lease's place among priorities: the highest any policy gives its client on an
   * exporter it could have. Leases that share a client and a selector share the answer.
   */
  priority(lease: Lease, exporters: readonly Readonly<ExporterRecord>[]): number {
    if (this.open) return 0;
    const k = `${lease.client}\u0000${lease.selector}\u0000${lease.exporterName ?? ""}`;
    const known = this.priorities.get(k);
    if (known !== undefined) return known;
    let selector: Selector | undefined;
    try {
      selector = parseSelector(lease.selector);
    } catch {
      // An invalid selector ends the lease in this pass; its place does not matter.
    }
    let best = 0;
    for (const e of exporters) {
      if (lease.exporterName !== undefined ? e.name !== lease.exporterName : !selector || !matches(selector, e.labels)) continue;
      const a = this.of(lease.client, e);
      if (a && a.priority > best) best = a.priority;
    }
    this.priorities.set(k, best);
    return best;
  }
}
