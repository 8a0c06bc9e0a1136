/**
 * A lease this process is using, from taking it to giving it back: created (or
 * an existing one reused), waited for, kept in sight while it is used, and
 * released exactly once — by `jmp shell` and by the library's `lease()` alike.
 *
 * A lease this process created carries a presence timeout: while it waits in the
 * queue or before anyone has connected, the controller gives it back when we
 * stop asking about it (the process was killed or the laptop is gone), so a dead
 * client never takes a board later for a whole lease.
 */
import { getLogger } from "../common/log.ts";
import type { ControllerConnection } from "./controller.ts";
import { isTransient, PeerError } from "./errors.ts";
import type { LeaseTarget } from "./lease-options.ts";
import { LeaseApi, type LeaseView } from "./leases.ts";
import { Code } from "@connectrpc/connect";
import { Backoff, sleep } from "../common/backoff.ts";
import { LeaseWatch, type WatchOptions } from "./lease-watch.ts";

const log = getLogger("client");

/** Seconds without a sign of us after which the controller may give a waiting lease back. */
export const PRESENCE_TIMEOUT_S = 30;
/**
 * How long a release waits for a controller that cannot be reached: a restart
 * takes seconds. A release lost to one kept a board that had been in use until
 * its expiry, since nothing else gives such a lease back (found by `npm run chaos`).
 */
export const RELEASE_RETRY_MS = 30_000;

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** A line saying why the lease waits, each time that changes. */
  onWait?: (why: string) => void;
}

export class LeaseHold {
  private releasing?: Promise<boolean>;
  private watching?: LeaseWatch;

  private constructor(
    readonly api: LeaseApi,
    public view: LeaseView,
    /** True when this process created the lease, and so gives it back. */
    readonly created: boolean,
  ) {}

  /**
   * Creates the lease the target asks for (riding out a controller restart: see
   * LeaseApi.createRetrying), or looks up the one it names.
   */
  static async take(
    connection: ControllerConnection,
    target: LeaseTarget,
    opts: { signal?: AbortSignal; onWait?: (why: string) => void; retryMs?: number } = {},
  ): Promise<LeaseHold> {
    const api = new LeaseApi(connection);
    if (target.leaseName) return new LeaseHold(api, await api.get(target.leaseName), false);
    const view = await api.createRetrying({
      selector: target.selector,
      exporterName: target.exporterName,
      durationMs: target.durationMs,
      allowDisabled: target.allowDisabled,
      presenceTimeoutS: PRESENCE_TIMEOUT_S,
    }, opts);
    return new LeaseHold(api, view, true);
  }

  get name(): string {
    return this.view.name;
  }

  /** Until the lease is Ready; throws when it ends, cannot be served, times out or `signal` aborts. */
  async waitReady(opts: WaitOptions): Promise<LeaseView> {
    this.view = await this.api.waitReady(this.name, opts);
    return this.view;
  }

  /**
   * Watches the lease while it is used (see LeaseWatch): looks at it now and then
   * (which also tells the controller we are still here), extends it or warns
   * before its end as `opts` ask, and calls `onEnd` once if it ends meanwhile. A
   * controller that cannot be reached for a while is not the end of a lease.
   * Watching again replaces the previous watch.
   */
  watch(opts: WatchOptions): LeaseWatch {
    this.watching?.stop();
    const access = {
      get: () => this.api.get(this.name),
      setDuration: (durationMs: number) => this.api.update(this.name, { durationMs }),
    };
    const watching = new LeaseWatch(this.name, access, this.view, opts).start();
    this.watching = watching;
    return watching;
  }

  /**
   * Gives the lease back if this process created it; once, whoever asks. A
   * controller that cannot be reached (a restart, a network blip) is tried again
   * for up to {@link RELEASE_RETRY_MS}: nothing else would give back a lease in
   * use before its expiry. Never throws: a lease that cannot be released is a
   * warning naming it. Resolves to true when this call released it.
   */
  release(opts: { retryMs?: number } = {}): Promise<boolean> {
    this.watching?.stop();
    return (this.releasing ??= (async () => {
      if (!this.created) return false;
      const deadline = Date.now() + (opts.retryMs ?? RELEASE_RETRY_MS);
      const backoff = new Backoff({ initialMs: 250, maxMs: 2_000 });
      for (let told = false; ; ) {
        try {
          return (await this.api.release(this.name)) === "released";
        } catch (e) {
          // Gone already (deleted by an admin): nothing is lost. Released already is
          // LeaseApi's "already"; any other refusal is worth the warning below.
          if (e instanceof PeerError && e.code === Code.NotFound) return false;
          const delay = backoff.next();
          if (!isTransient(e) || Date.now() + delay > deadline) {
            log.with({ lease: this.name }).warn(`could not release lease ${this.name}: ${(e as Error).message}; it ends at its expiry or with 'jmp lease delete ${this.name}'`);
            return false;
          }
          if (!told) log.with({ lease: this.name }).info(`releasing lease ${this.name}: ${(e as Error).message}; still trying`);
          told = true;
          await sleep(delay);
        }
      }
    })());
  }
}
