/**
 * Leases from the client's side: create, list (every page), get, update, release,
 * and wait until one is ready, reporting why it waits. Calls go through the one
 * controller connection (controller.ts), whose errors are already translated.
 */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { durationFromMs, durationMs, timestampDate, timestampFromDate, FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { type Lease, LeaseSchema, type Exporter } from "../gen/jumpstarter/client/v1/client_pb.ts";
import type { Condition } from "../gen/jumpstarter/v1/kubernetes_pb.ts";
import { UserError } from "../common/errors.ts";
import type { ControllerConnection } from "./controller.ts";
import { isTransient, looksRestarting, PeerError } from "./errors.ts";
import { Backoff, sleep } from "../common/backoff.ts";

/** How long creating a lease waits for a controller that cannot be reached: a restart takes seconds. */
export const CREATE_RETRY_MS = 30_000;

export interface LeaseRequest {
  selector?: string;
  exporterName?: string;
  durationMs: number;
  beginTime?: Date;
  tags?: Record<string, string>;
  context?: Record<string, string>;
  leaseId?: string;
  allowDisabled?: boolean;
  /**
   * Ask the controller to give the lease back when this client has not asked
   * about it for this long while it waits (the client is gone). jmp's controller
   * reads it from the `x-jmp-presence-timeout` metadata; others ignore it.
   */
  presenceTimeoutS?: number;
}

export const PRESENCE_HEADER = "x-jmp-presence-timeout";

/** A lease as the CLI shows it: plain names, dates and the state in one word. */
export interface LeaseView {
  name: string;
  selector: string;
  exporterName?: string;
  exporter?: string;
  client?: string;
  durationMs?: number;
  beginTime?: Date;
  endTime?: Date;
  effectiveBeginTime?: Date;
  effectiveEndTime?: Date;
  expiresAt?: Date;
  tags: Record<string, string>;
  state: "Ready" | "Pending" | "Ended" | "Unsatisfiable" | "Invalid" | "Unknown";
  reason: string;
  message: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  /** While it waits (jmp's controller): 1 for the next to be served among those wanting the same exporters. */
  queuePosition?: number;
  /** While it waits: about how long, by the controller's reckoning. */
  estimatedWaitMs?: number;
  /** What the access policy that granted the exporter said. */
  priority?: number;
  spotAccess?: boolean;
}

const lastPart = (name: string | undefined) => (name ? name.split("/").pop()! : undefined);
const toDate = (t: { seconds: bigint; nanos: number } | undefined) => (t ? timestampDate(t as never) : undefined);

function condition(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

export function leaseView(l: Lease): LeaseView {
  const durationMsValue = l.duration ? durationMs(l.duration) : undefined;
  const begin = toDate(l.effectiveBeginTime) ?? toDate(l.beginTime);
  const expiresAt = toDate(l.endTime) ?? (begin && durationMsValue !== undefined ? new Date(begin.getTime() + durationMsValue) : undefined);
  const ready = condition(l.conditions, "Ready");
  const pending = condition(l.conditions, "Pending");
  const unsatisfiable = condition(l.conditions, "Unsatisfiable");
  const invalid = condition(l.conditions, "Invalid");
  let state: LeaseView["state"] = "Unknown";
  let why: Condition | undefined;
  if (invalid?.status === "True") [state, why] = ["Invalid", invalid];
  else if (unsatisfiable?.status === "True") [state, why] = ["Unsatisfiable", unsatisfiable];
  else if (ready?.status === "True") [state, why] = ["Ready", ready];
  else if (ready?.status === "False" && l.effectiveEndTime) [state, why] = ["Ended", ready];
  else if (pending?.status === "True" || !ready) [state, why] = ["Pending", pending];
  else [state, why] = ["Ended", ready];
  return {
    name: lastPart(l.name)!,
    selector: l.selector,
    exporterName: l.exporterName || undefined,
    exporter: lastPart(l.exporter),
    client: lastPart(l.client),
    durationMs: durationMsValue,
    beginTime: toDate(l.beginTime),
    endTime: toDate(l.endTime),
    effectiveBeginTime: toDate(l.effectiveBeginTime),
    effectiveEndTime: toDate(l.effectiveEndTime),
    expiresAt: state === "Ended" ? toDate(l.effectiveEndTime) ?? expiresAt : expiresAt,
    tags: l.tags,
    state,
    reason: why?.reason ?? "",
    message: why?.message ?? "",
    conditions: l.conditions.map((c) => ({ type: c.type ?? "", status: c.status ?? "", reason: c.reason ?? "", message: c.message ?? "" })),
    queuePosition: l.queuePosition,
    estimatedWaitMs: l.estimatedWait ? durationMs(l.estimatedWait) : undefined,
    priority: l.priority,
    spotAccess: l.spotAccess || undefined,
  };
}

const ordinal = (n: number) => {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] ?? "th";
  return `${n}${suffix}`;
};

/** Rounded so that a waiting line changes when the estimate does, not every second. */
function about(ms: number): string {
  if (ms < 60_000) return "under a minute";
  const min = Math.round(ms / 60_000);
  if (min < 90) return `about ${min} min`;
  const h = Math.round(ms / 360_000) / 10;
  return `about ${h} h`;
}

/** "2nd in line for board=rpi4, about 14 min", for a lease that waits; undefined otherwise. */
export function standingText(v: LeaseView): string | undefined {
  if (v.queuePosition === undefined) return undefined;
  const what = v.selector || (v.exporterName ? `exporter ${v.exporterName}` : "its exporters");
  return `${ordinal(v.queuePosition)} in line for ${what}${v.estimatedWaitMs !== undefined ? `, ${about(v.estimatedWaitMs)}` : ""}`;
}

export class LeaseApi {
  constructor(private readonly c: ControllerConnection) {}

  private get parent() {
    return `namespaces/${this.c.address.namespace}`;
  }

  private leaseName(name: string) {
    return name.includes("/") ? name : `${this.parent}/leases/${name}`;
  }

  async create(req: LeaseRequest): Promise<LeaseView> {
    const lease = create(LeaseSchema, {
      selector: req.selector ?? "",
      exporterName: req.exporterName,
      duration: durationFromMs(req.durationMs),
      beginTime: req.beginTime ? timestampFromDate(req.beginTime) : undefined,
      tags: req.tags ?? {},
      context: req.context ?? {},
      allowDisabled: req.allowDisabled ?? false,
    });
    const headers = req.presenceTimeoutS ? { [PRESENCE_HEADER]: String(req.presenceTimeoutS) } : undefined;
    return leaseView(await this.c.clients.createLease({ parent: this.parent, leaseId: req.leaseId ?? "", lease }, { headers }));
  }

  /**
   * Creates the lease, trying again while the controller refuses or cuts the
   * connection (restarting, failing over) for up to `retryMs`, saying so through
   * `onWait`; a silent one is not waited for. The lease's name is chosen here when
   * not given, so a retry after an answer that got lost finds the lease the first try
   * made instead of making a second one that nobody would know of.
   */
  async createRetrying(req: LeaseRequest, opts: { signal?: AbortSignal; onWait?: (why: string) => void; retryMs?: number } = {}): Promise<LeaseView> {
    const leaseId = req.leaseId || Bun.randomUUIDv7();
    const deadline = Date.now() + (opts.retryMs ?? CREATE_RETRY_MS);
    const backoff = new Backoff({ initialMs: 250, maxMs: 2_000 });
    for (let tried = false; ; tried = true) {
      opts.signal?.throwIfAborted();
      try {
        return await this.create({ ...req, leaseId });
      } catch (e) {
        // Our own first try got through; only its answer was lost.
        if (tried && e instanceof PeerError && e.code === Code.AlreadyExists) return await this.get(leaseId);
        const delay = backoff.next();
        if (!looksRestarting(e) || Date.now() + delay > deadline) throw e;
        opts.onWait?.(`creating the lease: ${(e as Error).message}; still trying`);
        await sleep(delay, opts.signal);
      }
    }
  }

  async get(name: string): Promise<LeaseView> {
    return leaseView(await this.c.clients.getLease({ name: this.leaseName(name) }));
  }

  /** Every page, as upstream's CLI does; filtering by client is the caller's choice. */
  async list(opts: { onlyActive?: boolean; pageSize?: number; filter?: string } = {}): Promise<LeaseView[]> {
    const out: LeaseView[] = [];
    let pageToken = "";
    do {
      const page = await this.c.clients.listLeases({
        parent: this.parent, pageSize: opts.pageSize ?? 0, pageToken, filter: opts.filter ?? "", onlyActive: opts.onlyActive ?? true,
      });
      out.push(...page.leases.map(leaseView));
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  async update(name: string, change: { durationMs?: number; beginTime?: Date; client?: string }): Promise<LeaseView> {
    const paths: string[] = [];
    const lease = create(LeaseSchema, { name: this.leaseName(name) });
    if (change.durationMs !== undefined) {
      lease.duration = durationFromMs(change.durationMs);
      paths.push("duration");
    }
    if (change.beginTime) {
      lease.beginTime = timestampFromDate(change.beginTime);
      paths.push("begin_time");
    }
    if (change.client) {
      lease.client = change.client.includes("/") ? change.client : `${this.parent}/clients/${change.client}`;
      paths.push("client");
    }
    return leaseView(await this.c.clients.updateLease({ lease, updateMask: create(FieldMaskSchema, { paths }) }));
  }

  /**
   * Gives the lease back. "already": it had been released before (by an earlier try
   * whose answer was lost, a watchdog, another shell, an admin); releasing is what was
   * asked, so that is not a failure. Upstream's controller answers so too, in its words.
   */
  async release(name: string): Promise<"released" | "already"> {
    try {
      await this.c.clients.deleteLease({ name: this.leaseName(name) });
      return "released";
    } catch (e) {
      if (e instanceof PeerError && e.code === Code.FailedPrecondition && /already (been )?released/i.test(e.message)) return "already";
      throw e;
    }
  }

  async exporters(opts: { filter?: string; pageSize?: number } = {}): Promise<Exporter[]> {
    const out: Exporter[] = [];
    let pageToken = "";
    do {
      const page = await this.c.clients.listExporters({ parent: this.parent, pageSize: opts.pageSize ?? 0, pageToken, filter: opts.filter ?? "" });
      out.push(...page.exporters);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  /**
   * Polls until the lease is Ready (resolves) or can never be (throws), calling
   * `onWait` with a line saying why it waits whenever that changes. A controller
   * that cannot be reached for a while (a restart, a network blip) is waited
   * for, with backoff: the lease keeps its place in the queue meanwhile.
   */
  async waitReady(name: string, opts: { timeoutMs: number; intervalMs?: number; onWait?: (why: string) => void; signal?: AbortSignal }): Promise<LeaseView> {
    const deadline = Date.now() + opts.timeoutMs;
    const backoff = new Backoff({ initialMs: opts.intervalMs ?? 500, maxMs: 5_000 });
    let last = "";
    let lastState = "waiting";
    for (;;) {
      opts.signal?.throwIfAborted();
      let why: string;
      let delay = opts.intervalMs ?? 500;
      try {
        const v = await this.get(name);
        backoff.reset();
        if (v.state === "Ready") return v;
        if (v.state === "Ended" || v.state === "Unsatisfiable" || v.state === "Invalid") {
          throw new LeaseEndedError(v);
        }
        const standing = standingText(v);
        why = `lease ${v.name}: waiting${v.reason ? ` (${v.reason}${v.message ? `: ${v.message}` : ""})` : ""}${standing ? `; ${standing}` : ""}`;
        lastState = v.reason || v.state;
      } catch (e) {
        if (!isTransient(e)) throw e;
        why = `lease ${name}: ${(e as Error).message}; still trying`;
        delay = backoff.next();
      }
      if (why !== last) {
        last = why;
        opts.onWait?.(why);
      }
      if (Date.now() > deadline) {
        throw new LeaseWaitTimeout(`lease ${name} was not ready after ${formatSeconds(opts.timeoutMs)} (${lastState})`);
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now()) + 1), opts.signal);
    }
  }
}

/** The lease ended, or can never be served, while we waited for it. */
export class LeaseEndedError extends UserError {
  override name = "LeaseEndedError";
  constructor(readonly lease: LeaseView) {
    super(`lease ${lease.name} is ${lease.state.toLowerCase()}${lease.reason ? ` (${lease.reason})` : ""}${lease.message ? `: ${lease.message}` : ""}`, 1);
  }
}

export class LeaseWaitTimeout extends UserError {
  override name = "LeaseWaitTimeout";
}

const formatSeconds = (ms: number) => `${Math.round(ms / 1000)} s`;
