/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
 * does it: the leader renews `spec.renewTime` every `retryPeriodMs`; another replica
 * takes the Lease over once it has seen the same record unchanged for the lease
 * duration (measured on its own clock, so clocks need not agree); every write carries
 * the resourceVersion it read, so two that try at once cannot both win.
 *
 * A leader that cannot renew stops leading `renewDeadlineMs` after its last successful
 * renew, before anyone else may take over (`leaseDurationMs` after it): `isLeading()`
 * checks that deadline on every call, so a deposed leader's next scheduling pass sees
 * it has stopped leading even if the timer that would tell it has not fired yet.
 */
import type { V1Lease } from "@kubernetes/client-node";
import { getLogger } from "../../../common/log.ts";
import { isKubeError, type KubeApi } from "./api.ts";

const log = getLogger("controller");

export const LEADER_LEASE = "jumpstarter-controller";

export interface ElectionTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** Upstream's (controller-runtime) defaults, and the issue's 15 s lease. */
export const DEFAULT_TIMING: ElectionTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** MicroTime as the API wants it: RFC 3339 with microseconds. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, "000Z");

export class LeaderElector {
  private lastRenew = -Infinity;
  private observed: { record: string; at: number; holder?: string; durationMs: number } | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private leading = false;
  private failing = false;
  /** The attempt to take or renew the lease now in flight, if any. */
  private attempting: Promise<void> | undefined;

  constructor(
    private readonly api: KubeApi,
    readonly identity: string,
    private readonly onChange: (leading: boolean) => void,
    private readonly timing: ElectionTiming = DEFAULT_TIMING,
    private readonly now: () => number = Date.now,
  ) {}

  /** Leading now: the last renew is younger than the renew deadline. */
  isLeading(): boolean {
    return this.leading && this.now() - this.lastRenew < this.timing.renewDeadlineMs;
  }

  /**
   * Whether this replica should take clients and exporters (its readiness): the
   * leader does, and so does every replica while no other one is known to lead (the
   * API server unreachable, nobody elected yet), so that the lab keeps working from
   * what each has. A client and its exporter then meet on one replica: a Dial and the
   * router streams it pairs are served by one process.
   */
  servesTraffic(): boolean {
    if (this.isLeading()) return true;
    const o = this.observed;
    if (!o || !o.holder || o.holder === this.identity) return true;
    return this.now() - o.at >= o.durationMs;
  }

  start(): void {
    void this.tick();
  }

  /** Stops renewing; a leader gives the Lease up (renewTime cleared) so the next takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const was = this.leading;
    this.setLeading(false);
    // A renewal in flight must not make this replica leader again once stopped
    // (renewed() checks), nor race the release below into a conflict; one that won
    // the lease meanwhile is given up too.
    const inFlight = this.attempting;
    await inFlight?.catch(() => {});
    if (!was && !inFlight) return;
    try {
      const lease = await this.api.getLease(LEADER_LEASE);
      if (lease.spec?.holderIdentity !== this.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, renewTime: undefined, acquireTime: undefined, leaseDurationSeconds: 1 };
      await this.api.replaceLease(lease);
    } catch {
      // Then the others wait out the lease duration.
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      this.attempting = this.attempt();
      await this.attempting;
      this.failing = false;
    } catch (e) {
      // Once per run of failures: the API server being down is said by the store's watches too.
      if (!this.failing) log.warn(`${this.leading ? "renewing" : "checking"} the leader lease failed: ${(e as Error).message}`);
      this.failing = true;
    } finally {
      this.attempting = undefined;
    }
    // A renew that is late past the deadline ends the leadership here too.
    if (this.leading && !this.isLeading()) this.setLeading(false);
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.timing.retryPeriodMs);
  }

  private async attempt(): Promise<void> {
    const now = this.now();
    const durationS = Math.ceil(this.timing.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await this.api.getLease(LEADER_LEASE);
    } catch (e) {
      if (!isKubeError(e, 404)) throw e;
      await this.api.createLease({
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: LEADER_LEASE },
        spec: { holderIdentity: this.identity, leaseDurationSeconds: durationS, acquireTime: microTime(now) as unknown as Date, renewTime: microTime(now) as unknown as Date, leaseTransitions: 0 },
      });
      this.renewed(now, "nobody (a new lease)");
      return;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (this.observed?.record !== record) {
      this.observed = { record, at: now, holder: spec.renewTime !== undefined ? spec.holderIdentity ?? undefined : undefined, durationMs: (spec.leaseDurationSeconds ?? durationS) * 1000 };
    }
    const mine = spec.holderIdentity === this.identity;
    const held = !!spec.holderIdentity && spec.renewTime !== undefined;
    const expired = now - this.observed.at >= (spec.leaseDurationSeconds ?? durationS) * 1000;
    if (!mine && held && !expired) {
      if (this.leading) this.setLeading(false);
      return;
    }
    const next = {
      ...spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: durationS,
      renewTime: microTime(now) as unknown as Date,
      ...(mine ? {} : { acquireTime: microTime(now) as unknown as Date, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      await this.api.replaceLease({ ...lease, spec: next });
    } catch (e) {
      // Someone else wrote it first: read again next time.
      if (isKubeError(e, 409)) return;
      throw e;
    }
    this.renewed(now, mine ? undefined : spec.holderIdentity || "nobody");
  }

  private renewed(at: number, from?: string): void {
    this.lastRenew = at;
    // Stopped meanwhile (stop() waits for this attempt, then gives the lease up).
    if (this.leading || this.stopped) return;
    log.info(`leading as ${this.identity}${from ? ` (took the ${LEADER_LEASE} lease from ${from})` : ""}`);
    this.setLeading(true);
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (!leading && !this.stopped) log.warn(`no longer leading (${this.identity}): scheduling stops here until the lease is won again`);
    this.onChange(leading);
  }
}
