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
  private readonly classes = new Map<string, string>();
  private readonly labels = new Map<string, Readonly<Record<string, string>>>();
  private readonly byClass = new Map<string, Map<string, Access | null>>();
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

  /**
   * Clients with the same labels have the same access: the pass asks by this key, so
   * a hundred CI clients labelled alike cost one answer per exporter, not a hundred.
   * "" while there are no policies.
   */
  accessClass(client: string): string {
    if (this.open) return "";
    let k = this.classes.get(client);
    if (k === undefined) {
      const labels = this.store.getClient(this.namespace, client)?.labels ?? {};
      k = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      this.classes.set(client, k);
      this.labels.set(k, labels);
    }
    return k;
  }

  /** What the policies give `client` on `exporter`; null when nothing admits it. */
  of(client: string, exporter: Readonly<ExporterRecord>): Access | null {
    if (this.open) return OPEN_ACCESS;
    const k = this.accessClass(client);
    let memo = this.byClass.get(k);
    if (!memo) this.byClass.set(k, (memo = new Map()));
    const known = memo.get(exporter.name);
    if (known !== undefined) return known;
    const access = accessFor(this.policies, this.labels.get(k)!, exporter.labels);
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
    const k = `${this.accessClass(lease.client)}\u0000${lease.selector}\u0000${lease.exporterName ?? ""}`;
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
