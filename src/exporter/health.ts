/**
 * Health checks (ours, beyond upstream): `hooks.healthCheck` runs between leases —
 * when the exporter starts, after every `every` leases, and when it has been idle
 * for `interval` (again and again, so an unhealthy exporter comes back by itself
 * once a check passes). The check gets a session of fresh drivers, as a lease
 * does, so `j` works in it; no client can reach that session.
 *
 * Each result goes to the controller with every status report (the agent's
 * StatusReporter), which keeps an unhealthy exporter out of scheduling. What a
 * failure does is `onFailure`: endLease (the default here) takes the exporter out
 * of scheduling, warn only says so, exit stops the exporter.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HealthCheckConfig } from "../common/exporter-config.ts";
import type { Logger } from "../common/log.ts";
import { type ExporterHealth, ExporterHealthSchema, HealthState } from "../gen/jumpstarter/v1/health_pb.ts";
import type { ExporterHooks } from "./hooks.ts";
import type { ExporterSession } from "./session.ts";

export interface HealthMonitorOptions {
  hooks: ExporterHooks;
  log: Logger;
  /** A session of fresh drivers for one check, and how to close it. */
  openSession: () => Promise<{ session: ExporterSession; close: () => Promise<void> }>;
  /** The result to send with the next status report; `immediately` reports it now (the exporter is idle). */
  report: (health: ExporterHealth, immediately: boolean) => void;
  /** The check failed with `onFailure: exit`. */
  exit: (message: string) => void;
  /** Whether the exporter is between leases (an interval check must not take a lease's devices). */
  idle: () => boolean;
  /** Aborted when the exporter stops: a running check is ended. */
  signal: AbortSignal;
}

/** What a jmp exporter without a health check sends: the controller then forgets any earlier result. */
export const NO_HEALTH_CHECK = create(ExporterHealthSchema, { state: HealthState.UNSPECIFIED });

export class HealthMonitor {
  private readonly config: HealthCheckConfig;
  private leasesSinceCheck = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private current?: Promise<void>;
  private firstDone = false;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.config = opts.hooks.hooks.healthCheck!.config as HealthCheckConfig;
    opts.signal.addEventListener("abort", () => clearTimeout(this.timer), { once: true });
  }

  /** The check that is running, if one is: a lease waits for it. */
  get running(): Promise<void> | undefined {
    return this.current;
  }

  /**
   * The exporter is idle after its start: the CHECKING state to report with
   * AVAILABLE when the first check is yet to run (then run it with check()). Until
   * then the controller keeps what it knew of the exporter's health.
   */
  idleAtStart(): ExporterHealth | undefined {
    return this.firstDone ? undefined : this.checkingNow();
  }

  /**
   * A lease has ended: the CHECKING state to report with AVAILABLE when a check is
   * due now (after `every` leases, or the first one since the start), else undefined.
   */
  idleAfterLease(): ExporterHealth | undefined {
    this.leasesSinceCheck += 1;
    const due = !this.firstDone || (this.config.every !== undefined && this.leasesSinceCheck >= this.config.every);
    if (due) return this.checkingNow();
    // Idle from now on: the interval counts from here.
    this.arm();
    return undefined;
  }

  private checkingNow(): ExporterHealth {
    return create(ExporterHealthSchema, { state: HealthState.CHECKING, checkId: crypto.randomUUID() });
  }

  /** Runs the check now; `announced` is the CHECKING state reported with AVAILABLE, if the caller did. */
  check(why: string, announced?: ExporterHealth): Promise<void> {
    this.current ??= this.run(why, announced).finally(() => {
      this.current = undefined;
      this.arm();
    });
    return this.current;
  }

  private async run(why: string, announced?: ExporterHealth): Promise<void> {
    clearTimeout(this.timer);
    this.leasesSinceCheck = 0;
    this.firstDone = true;
    const checking = announced ?? this.checkingNow();
    if (!announced) this.opts.report(checking, true);
    this.opts.log.info(`health check: running (${why})`);
    let ok = false;
    let message: string;
    try {
      const { session, close } = await this.opts.openSession();
      try {
        const run = await this.opts.hooks.run("healthCheck", session, { leaseName: "", clientName: "" }, this.opts.signal);
        ok = run.ok;
        message = run.ok ? "" : run.why;
      } finally {
        await close();
      }
    } catch (e) {
      message = `cannot start a session for the check: ${(e as Error).message}`;
    }
    if (this.opts.signal.aborted) return;
    const { onFailure } = this.config;
    const failed = !ok && onFailure !== "warn";
    // A failure was logged where it ran (hooks.ts).
    if (ok) this.opts.log.info("health check: passed");
    this.opts.report(create(ExporterHealthSchema, {
      state: failed ? HealthState.UNHEALTHY : HealthState.HEALTHY,
      // Under warn the exporter stays in service, but says what went wrong.
      message: ok ? "" : failed ? message : `the last check failed (onFailure: warn): ${message}`,
      checkId: checking.checkId,
      checkedAt: timestampFromMs(Date.now()),
    }), true);
    if (!ok && onFailure === "exit") this.opts.exit(`the health check failed (onFailure: exit): ${message}`);
  }

  /** The next interval check, counted from the end of this one. */
  private arm(): void {
    clearTimeout(this.timer);
    if (this.config.interval === undefined || this.opts.signal.aborted) return;
    this.timer = setTimeout(() => {
      if (this.opts.idle()) void this.check(`idle for ${Math.round(this.config.interval! / 1000)} s`);
      else this.arm();
    }, this.config.interval);
  }
}
