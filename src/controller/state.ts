/**
 * The controller's state and lease logic, free of any transport: principals, the
 * exporter lifecycle, leases with a FIFO queue, expiry and scheduled-begin timers, the
 * offline sweep, and change events. The RPC layer calls these methods and maps
 * ControllerError codes 1:1 onto gRPC status codes.
 *
 * Every change runs in one store write transaction, including the scheduling pass it
 * triggers, so an exporter can never be handed to two leases. Events fire only after
 * the transaction committed.
 */
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { getLogger } from "../common/log.ts";
import { formatSelector, matches } from "../common/selector.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "./errors.ts";
import { Emitter } from "./events.ts";
import { randomId, uuidv7 } from "./ids.ts";
import { LeaseTimers } from "./lease-timers.ts";
import {
  checkLabels,
  leaseExpiresAt,
  leaseLabels,
  parseOrReject,
  resolveTimes,
  updatedTimes,
  validateContext,
  validateDnsLabel,
  validateLeaseId,
  validatePresenceTimeout,
  validateTags,
} from "./lease-rules.ts";
import type {
  Client,
  DeviceReport,
  Exporter,
  ExporterRecord,
  HealthRecord,
  HealthReport,
  Labels,
  Lease,
  LeaseListOptions,
  LeaseRequest,
  LeaseUpdate,
  PrincipalRef,
} from "./model.ts";
import {
  type Actor, actorOf, ADMIN, type AuditEntry, type AuditQuery, CONTROLLER, MAX_AUDIT_LIMIT, type NewAuditEntry,
} from "./audit.ts";
import { labelText, requestText, timesChange } from "./audit-text.ts";
import { ACQUIRED_MESSAGE, endLease, endReleased, type PassContext, serveNamespace } from "./queue.ts";
import { PassAccess } from "./pass-access.ts";
import { type QueueStanding, queueStanding, typicalDurations } from "./queue-standing.ts";
import type { AccessPolicy } from "../common/access-policy.ts";
import { formatDuration } from "../common/duration.ts";
import { setCondition } from "./scheduler.ts";
import type { Store } from "./store/store.ts";
import { StateTransaction } from "./transaction.ts";

export { leaseExpiresAt } from "./lease-rules.ts";

export interface ControllerStateOptions {
  now?: () => number;
  /**
   * How long an exporter that has not opened a Status stream since this process
   * started counts as online after its last sign of life (upstream: 1 min): exporters
   * that only report status, and every exporter just after a controller restart.
   */
  offlineGraceMs?: number;
  /**
   * How long an exporter stays online after its Status stream closed, so that a
   * reconnect (a network blip) does not flap it offline. A killed exporter's
   * connection closes at once, so this is how long the controller shows it online.
   */
  reconnectGraceMs?: number;
  /** A Ready lease that no client has dialled for this long says so in its Ready condition. */
  undialedAfterMs?: number;
  /** How often the offline sweep runs while started. */
  sweepIntervalMs?: number;
  /** How often the sweep refreshes lastSeen of exporters with an open Status stream (upstream: 10 s). */
  heartbeatMs?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /**
   * With several replicas on one store (Kubernetes), only the leader schedules: it
   * runs the scheduling passes, the expiry and begin timers and the offline sweep.
   * Checked at every pass. Default: always (one controller).
   */
  isLeading?: () => boolean;
}

export interface ControllerEvents {
  lease: Lease;
  exporter: Exporter;
  /** Tokens issued to this principal before now are no longer valid (deleted or rotated). */
  revoked: PrincipalRef;
}

/** A lease whose client asked to be released when it shows no sign of life. */
interface Presence {
  client: string;
  timeoutMs: number;
  /** The last call by the client that named the lease, or the controller's start. */
  lastSeen: number;
}

/** The Ready message of a lease that no client has dialled yet. */
const undialedMessage = (exporter: string) => `ready on ${exporter}; no client has connected yet`;

/** A disable reason is a line in a table, not a document. */
const MAX_REASON = 200;

/** Register may only set labels under this prefix; the rest belong to the admin. */
const REGISTERED_LABEL_PREFIX = "jumpstarter.dev/";

const key = (namespace: string, name: string) => `${namespace}/${name}`;
const log = getLogger("controller");

export class ControllerState {
  private readonly now: () => number;
  private readonly offlineGraceMs: number;
  private readonly reconnectGraceMs: number;
  private readonly undialedAfterMs: number;
  private readonly sweepIntervalMs: number;
  private readonly heartbeatMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly isLeading: () => boolean;
  /** Namespaces whose pass is due after changes another replica made. */
  private readonly duePasses = new Set<string>();
  private passHandle: unknown = undefined;

  // In memory only, since streams and calls die with the process:
  /** Open Status streams per exporter. */
  private readonly streams = new Map<string, number>();
  /**
   * Exporters whose last Status stream closed while this process ran: when, the timer
   * that ends their grace, whether it has, and when a report here last set lastSeen
   * (so that only another replica's refresh of lastSeen reads as a reconnection there).
   */
  private readonly disconnected = new Map<string, { at: number; timer: unknown; over: boolean; heardAt: number }>();
  /** Open leases with a presence timeout, by `namespace/name`. */
  private readonly presence = new Map<string, Presence & { namespace: string; name: string }>();
  /** Per namespace: how long leases of each selector lasted, and when that was read (see queueStanding). */
  private readonly typical = new Map<string, { at: number; durations: ReadonlyMap<string, number> }>();
  /** Open leases whose dialedAt is stored: a Dial on them needs no write, nor even a read. */
  private readonly inUse = new Set<string>();
  /** Leases that became Ready while this process ran, until they end: has a client dialled, has the lease said nobody did. */
  private readonly dials = new Map<string, { namespace: string; name: string; readyAt: number; dialed: boolean; flagged: boolean }>();
  private startedAt: number;

  private readonly timers: LeaseTimers;
  private readonly events = new Emitter<ControllerEvents>();
  private sweepHandle: unknown = undefined;
  private running = false;
  private tx: StateTransaction | null = null;
  private readonly pass: PassContext;

  constructor(
    readonly store: Store,
    opts: ControllerStateOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.offlineGraceMs = opts.offlineGraceMs ?? 60_000;
    this.reconnectGraceMs = opts.reconnectGraceMs ?? 5_000;
    this.undialedAfterMs = opts.undialedAfterMs ?? 60_000;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 5_000;
    this.heartbeatMs = opts.heartbeatMs ?? 10_000;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.isLeading = opts.isLeading ?? (() => true);
    this.startedAt = this.now();
    this.timers = new LeaseTimers({ now: this.now, setTimer: this.setTimer, clearTimer: this.clearTimer }, async (ns, name) => {
      await this.mutate((tx) => this.serve(tx, ns));
      return this.store.getLease(ns, name);
    });
    this.pass = { store, now: this.now, isOnline: (e) => this.isOnline(e) };
  }

  // ---- events ----

  /** Subscribes to committed changes; returns the unsubscribe function. Do not mutate the values. */
  on<K extends keyof ControllerEvents>(event: K, fn: (value: ControllerEvents[K]) => void): () => void {
    return this.events.on(event, fn);
  }

  // ---- transactions ----

  /**
   * Runs fn in one store transaction, giving it the only way to write; after the
   * commit, fires an event per change and re-arms timers. fn is synchronous and may
   * run more than once (see Store.transaction): it changes nothing outside the
   * transaction but idempotent in-memory books. A call inside fn joins.
   */
  private mutate<T>(fn: (tx: StateTransaction) => T, actor: Actor = CONTROLLER): Promise<T> {
    if (this.tx) return Promise.resolve(fn(this.tx));
    return this.store.transaction((writer) => {
      const tx = new StateTransaction(writer, actor, this.now);
      this.tx = tx;
      try {
        const result = fn(tx);
        tx.afterCommit(() => this.committed(tx));
        return result;
      } finally {
        this.tx = null;
      }
    });
  }

  /** The events of a committed transaction. */
  private committed(tx: StateTransaction): void {
    for (const lease of tx.leases.values()) {
      this.timers.arm(lease);
      this.track(lease);
      this.events.emit("lease", lease);
    }
    for (const exporter of tx.exporters.values()) this.events.emit("exporter", this.withOnline(exporter));
    for (const ref of tx.revoked) this.events.emit("revoked", ref);
  }

  /**
   * Keeps the in-memory presence and dial books in step with a committed lease.
   * Presence clocks start only for this replica's own writes (`own`): the client that
   * created or took over the lease talks to this replica, so only here do its calls
   * count; another replica giving it back would not see them.
   */
  private track(lease: Lease, own = true): void {
    const k = key(lease.namespace, lease.name);
    if (lease.ended) {
      this.presence.delete(k);
      this.dials.delete(k);
      this.inUse.delete(k);
      return;
    }
    if (own && lease.presenceTimeout !== undefined && lease.dialedAt === undefined && this.presence.get(k)?.client !== lease.client) {
      // New, or transferred: the (new) client's clock starts now.
      this.presence.set(k, {
        namespace: lease.namespace, name: lease.name, client: lease.client, timeoutMs: lease.presenceTimeout, lastSeen: this.now(),
      });
    }
    if (lease.exporter !== undefined && lease.effectiveBeginTime !== undefined && lease.effectiveBeginTime >= this.startedAt &&
      !this.dials.has(k)) {
      this.dials.set(k, { namespace: lease.namespace, name: lease.name, readyAt: lease.effectiveBeginTime, dialed: false, flagged: false });
    }
  }

  // ---- principals ----

  async createClient(namespace: string, name: string, labels: Labels = {}, by: Actor = ADMIN): Promise<Client> {
    validateDnsLabel("namespace", namespace);
    validateDnsLabel("client name", name);
    checkLabels(labels, "client labels");
    return this.mutate((tx) => {
      if (this.store.getClient(namespace, name)) {
        throw alreadyExists(`client '${name}' already exists in namespace '${namespace}'`);
      }
      const client: Client = {
        namespace,
        name,
        uid: crypto.randomUUID(),
        labels: { ...labels },
        tokenId: randomId(),
        createdAt: this.now(),
      };
      tx.createClient(client);
      tx.audit({ namespace, action: "client.create", client: name, detail: labelText(labels) });
      return client;
    }, by);
  }

  async createExporter(namespace: string, name: string, labels: Labels = {}, by: Actor = ADMIN): Promise<Exporter> {
    validateDnsLabel("namespace", namespace);
    validateDnsLabel("exporter name", name);
    checkLabels(labels, "exporter labels");
    return this.mutate((tx) => {
      if (this.store.getExporter(namespace, name)) {
        throw alreadyExists(`exporter '${name}' already exists in namespace '${namespace}'`);
      }
      const exporter: ExporterRecord = {
        namespace,
        name,
        uid: crypto.randomUUID(),
        labels: { ...labels },
        enabled: true,
        disabledReason: "",
        health: null,
        tokenId: randomId(),
        devices: [],
        status: ExporterStatus.UNSPECIFIED,
        statusMessage: "",
        registered: false,
        lastSeen: null,
        leaseName: null,
        createdAt: this.now(),
      };
      tx.createExporter(exporter);
      tx.audit({ namespace, action: "exporter.create", exporter: name, detail: labelText(labels) });
      this.serve(tx, namespace);
      return this.withOnline(exporter);
    }, by);
  }

  getClient(namespace: string, name: string): Client {
    const client = this.store.getClient(namespace, name);
    if (!client) throw notFound(`client '${name}' not found in namespace '${namespace}'`);
    return client;
  }

  getExporter(namespace: string, name: string): Exporter {
    return this.withOnline(this.requireExporter(namespace, name));
  }

  listClients(namespace: string): Client[] {
    return this.store.listClients(namespace);
  }

  listExporters(namespace: string, opts: { selector?: string } = {}): Exporter[] {
    const selector = opts.selector ? parseOrReject(opts.selector) : undefined;
    return this.store
      .listExporters(namespace)
      .filter((e) => !selector || matches(selector, e.labels))
      .map((e) => this.withOnline(e));
  }

  /** Admin change: the labels, replacing all of them. */
  async updateExporter(namespace: string, name: string, patch: { labels: Labels }, by: Actor = ADMIN): Promise<Exporter> {
    checkLabels(patch.labels, "exporter labels");
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      exporter.labels = { ...patch.labels };
      tx.audit({ namespace, action: "exporter.update", exporter: name, detail: `labels ${labelText(patch.labels)}` });
      return this.touch(tx, exporter);
    }, by);
  }

  /**
   * Maintenance: the exporter gets no new lease (the one it holds goes on), except
   * one that names it with allowDisabled; `reason` is shown to clients.
   */
  async disableExporter(namespace: string, name: string, reason: string, by: Actor = ADMIN): Promise<Exporter> {
    const why = reason.trim();
    if (!why) throw invalidArgument("a reason is needed to disable an exporter: clients see it in 'jmp exporter list'");
    if (why.length > MAX_REASON) throw invalidArgument(`the reason must be at most ${MAX_REASON} characters: got ${why.length}`);
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, { enabled: false, disabledReason: why });
      log.info(`exporter ${namespace}/${name} disabled: ${why}`);
      tx.audit({ namespace, action: "exporter.disable", exporter: name, detail: why });
      return this.touch(tx, exporter);
    }, by);
  }

  /** Back in service; a failed health check is overridden until the exporter's next check says otherwise. */
  async enableExporter(namespace: string, name: string, by: Actor = ADMIN): Promise<Exporter> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, { enabled: true, disabledReason: "" });
      if (exporter.health?.state === "unhealthy") exporter.health = { ...exporter.health, overridden: true };
      log.info(`exporter ${namespace}/${name} enabled`);
      tx.audit({ namespace, action: "exporter.enable", exporter: name, detail: exporter.health?.overridden ? "its failed health check overridden" : "" });
      return this.touch(tx, exporter);
    }, by);
  }

  /** Deletes the client and releases all its leases; its tokens stop working at once. */
  async deleteClient(namespace: string, name: string, by: Actor = ADMIN): Promise<void> {
    await this.mutate((tx) => {
      this.getClient(namespace, name);
      tx.audit({ namespace, action: "client.delete", client: name });
      for (const lease of this.store.listLeases(namespace, { client: name, onlyActive: true })) {
        lease.released = true;
        endLease(this.pass, tx, lease, "Released", "The lease was released because its client was deleted");
      }
      tx.deleteClient(namespace, name);
      this.serve(tx, namespace);
    }, by);
  }

  /** Deletes the exporter; the lease holding it ends, pending leases pinned to it become unsatisfiable. */
  async deleteExporter(namespace: string, name: string, by: Actor = ADMIN): Promise<void> {
    await this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      tx.audit({ namespace, action: "exporter.delete", exporter: name });
      if (exporter.leaseName) {
        const lease = this.store.getLease(namespace, exporter.leaseName);
        if (lease && !lease.ended) endLease(this.pass, tx, lease, "ExporterDeleted", `Exporter ${name} was deleted`);
      }
      tx.deleteExporter(namespace, name);
      this.serve(tx, namespace);
    }, by);
    this.streams.delete(key(namespace, name));
    this.forgetDisconnect(key(namespace, name));
  }

  /** Gives the principal a new token id, so tokens carrying the old one are refused. */
  async rotateToken(kind: PrincipalRef["kind"], namespace: string, name: string, by: Actor = ADMIN): Promise<string> {
    return this.mutate((tx) => {
      const tokenId = randomId();
      if (kind === "Client") {
        tx.rotateToken({ kind, record: { ...this.getClient(namespace, name), tokenId } });
        tx.audit({ namespace, action: "client.token-rotate", client: name });
      } else {
        tx.rotateToken({ kind, record: { ...this.requireExporter(namespace, name), tokenId } });
        tx.audit({ namespace, action: "exporter.token-rotate", exporter: name });
      }
      return tokenId;
    }, by);
  }

  // ---- exporter lifecycle ----

  /** Register: replaces the exporter's `jumpstarter.dev/*` labels with the request's and stores its driver reports. */
  async register(namespace: string, name: string, labels: Labels, devices: DeviceReport[]): Promise<Exporter> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      const next: Labels = {};
      for (const [k, v] of Object.entries(exporter.labels)) if (!k.startsWith(REGISTERED_LABEL_PREFIX)) next[k] = v;
      for (const [k, v] of Object.entries(labels)) if (k.startsWith(REGISTERED_LABEL_PREFIX)) next[k] = v;
      checkLabels(next, `labels registered by exporter '${name}'`);
      Object.assign(exporter, { labels: next, devices, registered: true });
      return this.touch(tx, exporter);
    });
  }

  /** Unregister (the exporter shutting down): its reports go, it is marked OFFLINE. Its lease stays. */
  async unregister(namespace: string, name: string, reason: string): Promise<Exporter> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, {
        devices: [],
        registered: false,
        status: ExporterStatus.OFFLINE,
        statusMessage: reason || "Exporter unregistered",
      });
      return this.touch(tx, exporter);
    });
  }

  /**
   * ReportStatus. `health` is what a jmp exporter says of its health check with each
   * report (null: it runs none); undefined (upstream's exporters) leaves it as it was.
   */
  async reportStatus(namespace: string, name: string, status: ExporterStatus, message: string, health?: HealthReport | null): Promise<Exporter> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, { status, statusMessage: message, lastSeen: this.heard(namespace, name) });
      if (health !== undefined) exporter.health = this.healthAfter(exporter, health);
      return this.touch(tx, exporter);
    });
  }

  /** The stored health once `report` is in; an admin's override sticks to the run it overrode. */
  private healthAfter(exporter: ExporterRecord, report: HealthReport | null): HealthRecord | null {
    if (report === null) return null;
    const before = exporter.health;
    const overridden = before?.checkId === report.checkId && before.overridden;
    if (report.state === "unhealthy" && (before?.state !== "unhealthy" || before.checkId !== report.checkId)) {
      log.warn(`exporter ${exporter.namespace}/${exporter.name} failed its health check: ${report.message}`);
    } else if (report.state === "healthy" && before?.state === "unhealthy") {
      log.info(`exporter ${exporter.namespace}/${exporter.name} passed its health check again`);
    }
    return { ...report, overridden };
  }

  /**
   * A Status stream opened: the exporter is online while any is open. Like upstream, a
   * stale OFFLINE status is cleared, since old exporters never report another.
   */
  async statusStreamOpened(namespace: string, name: string): Promise<Exporter> {
    const k = key(namespace, name);
    this.streams.set(k, (this.streams.get(k) ?? 0) + 1);
    this.forgetDisconnect(k);
    try {
      return await this.mutate((tx) => {
        const exporter = this.requireExporter(namespace, name);
        exporter.lastSeen = this.now();
        if (exporter.status === ExporterStatus.OFFLINE) {
          Object.assign(exporter, { status: ExporterStatus.UNSPECIFIED, statusMessage: "" });
        }
        return this.touch(tx, exporter);
      });
    } catch (err) {
      this.dropStream(namespace, name);
      throw err;
    }
  }

  /**
   * A Status stream closed. When it was the exporter's last, the exporter stays online
   * for the reconnect grace only, then is marked OFFLINE. Null if it was deleted meanwhile.
   */
  async statusStreamClosed(namespace: string, name: string): Promise<Exporter | null> {
    this.dropStream(namespace, name);
    // Seen last when the stream closed, to the millisecond the grace counts from: a
    // later lastSeen then means another replica has the exporter (reconnectGraceOver).
    const closedAt = this.disconnected.get(key(namespace, name))?.at ?? this.now();
    return this.mutate((tx) => {
      const exporter = this.store.getExporter(namespace, name);
      if (!exporter) return null;
      exporter.lastSeen = closedAt;
      return this.touch(tx, exporter);
    });
  }

  /** A sign of life from an exporter (while its Status stream is open, the sweep refreshes lastSeen instead). */
  async heartbeat(namespace: string, name: string): Promise<Exporter> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, name);
      exporter.lastSeen = this.heard(namespace, name);
      return this.touch(tx, exporter);
    });
  }

  /** Now, noted as this replica's own sign of the exporter when its stream here has closed. */
  private heard(namespace: string, name: string): number {
    const now = this.now();
    const gone = this.disconnected.get(key(namespace, name));
    if (gone) gone.heardAt = now;
    return now;
  }

  /** Whether the exporter has a Status stream open now: it can be reached for a Dial. */
  isConnected(namespace: string, name: string): boolean {
    return this.streams.has(key(namespace, name));
  }

  private dropStream(namespace: string, name: string): void {
    const k = key(namespace, name);
    const n = (this.streams.get(k) ?? 0) - 1;
    if (n > 0) {
      this.streams.set(k, n);
      return;
    }
    this.streams.delete(k);
    this.forgetDisconnect(k);
    const timer = this.setTimer(() => this.reconnectGraceOver(namespace, name), this.reconnectGraceMs);
    const at = this.now();
    this.disconnected.set(k, { at, timer, over: false, heardAt: at });
  }

  private forgetDisconnect(k: string): void {
    const gone = this.disconnected.get(k);
    if (gone) this.clearTimer(gone.timer);
    this.disconnected.delete(k);
  }

  /** The exporter did not come back within the grace: OFFLINE now, rather than at the next sweep. */
  private reconnectGraceOver(namespace: string, name: string): void {
    const k = key(namespace, name);
    this.mutate((tx) => {
      const gone = this.disconnected.get(k);
      // Ended here, in the transaction that marks the exporter OFFLINE, so no read
      // sees it offline but not marked (see isOnline).
      if (gone) gone.over = true;
      const exporter = this.store.getExporter(namespace, name);
      if (!exporter || exporter.status === ExporterStatus.OFFLINE || this.isOnline(exporter)) return;
      // Seen since its stream here closed, and not by a report here: it reconnected to
      // another replica. Its lastSeen, which that replica refreshes, judges it from now on.
      if (gone && exporter.lastSeen !== null && exporter.lastSeen > gone.heardAt) {
        this.forgetDisconnect(k);
        return;
      }
      this.markOffline(tx, exporter);
      this.serve(tx, namespace);
    }).catch((err) => {
      // The sweep will try again.
      log.error(`marking exporter ${namespace}/${name} offline failed: ${(err as Error).message}`);
    });
  }

  private markOffline(tx: StateTransaction, exporter: ExporterRecord): void {
    const gone = this.disconnected.get(key(exporter.namespace, exporter.name));
    Object.assign(exporter, {
      status: ExporterStatus.OFFLINE,
      statusMessage: gone
        ? `Connection lost at ${new Date(gone.at).toISOString()}`
        : `Connection lost: last seen more than ${Math.round(this.offlineGraceMs / 1000)} s ago`,
    });
    tx.saveExporter(exporter);
  }

  /** Saves an exporter change and serves the queue, since it may have become eligible. */
  private touch(tx: StateTransaction, exporter: ExporterRecord): Exporter {
    tx.saveExporter(exporter);
    this.serve(tx, exporter.namespace);
    return this.withOnline(this.store.getExporter(exporter.namespace, exporter.name)!);
  }

  /** The scheduling pass for one namespace, inside the running transaction; only the leader runs it. */
  private serve(tx: StateTransaction, namespace: string): void {
    if (this.isLeading()) serveNamespace(this.pass, tx, namespace);
  }

  // ---- replicas ----

  /**
   * The store saw an object change, this replica's write or another's (a watch):
   * events fire for it, so a Status or Listen stream on any replica sees its lease
   * promptly, and the leader runs a pass for the namespace, since the change (a lease
   * created on another replica, an exporter that came online there) may let a lease in.
   */
  storeChanged(kind: "clients" | "exporters" | "leases" | "exporteraccesspolicies", namespace: string, name: string): void {
    if (kind === "leases") {
      const lease = this.store.getLease(namespace, name);
      if (!lease) return;
      this.timers.arm(lease);
      this.track(lease, false);
      this.events.emit("lease", lease);
    } else if (kind === "exporters") {
      const exporter = this.store.getExporter(namespace, name);
      if (exporter) this.events.emit("exporter", this.withOnline(exporter));
    }
    if (kind !== "clients" && this.running && this.isLeading()) this.passSoon(namespace);
  }

  /** Coalesces the passes many changes at once call for into one per namespace. */
  private passSoon(namespace: string): void {
    this.duePasses.add(namespace);
    if (this.passHandle !== undefined) return;
    this.passHandle = this.setTimer(() => {
      this.passHandle = undefined;
      const namespaces = [...this.duePasses];
      this.duePasses.clear();
      this.mutate((tx) => {
        for (const ns of namespaces) this.serve(tx, ns);
      }).catch((err) => log.error(`scheduling pass failed: ${(err as Error).message}`));
    }, 0);
  }

  /** This replica became the leader (it schedules from now on) or stopped being it. */
  async leadershipChanged(leading: boolean): Promise<void> {
    if (!this.running) return;
    if (!leading) {
      this.timers.stop();
      return;
    }
    this.timers.start();
    await this.mutate((tx) => {
      const open = this.store.listLeases(undefined, { onlyActive: true });
      const namespaces = new Set([...this.store.listExporters().map((e) => e.namespace), ...open.map((l) => l.namespace)]);
      for (const ns of namespaces) this.serve(tx, ns);
    });
    for (const lease of this.store.listLeases(undefined, { onlyActive: true })) this.timers.arm(lease);
  }

  private requireExporter(namespace: string, name: string): ExporterRecord {
    const exporter = this.store.getExporter(namespace, name);
    if (!exporter) throw notFound(`exporter '${name}' not found in namespace '${namespace}'`);
    return exporter;
  }

  /**
   * Online: a Status stream is open, or its last one closed less than the reconnect
   * grace ago. An exporter with no stream since this process started (just after a
   * restart, or one that only reports status) is judged by lastSeen, as upstream.
   */
  private isOnline(exporter: Readonly<ExporterRecord>): boolean {
    if (exporter.status === ExporterStatus.OFFLINE) return false;
    const k = key(exporter.namespace, exporter.name);
    if (this.streams.has(k)) return true;
    const gone = this.disconnected.get(k);
    // The grace's timer decides, not the clock: judged by the clock, an exporter read
    // between the grace's end and a late timer was offline yet not marked OFFLINE.
    if (gone) return !gone.over;
    return exporter.lastSeen !== null && this.now() - exporter.lastSeen <= this.offlineGraceMs;
  }

  private withOnline(exporter: ExporterRecord): Exporter {
    return { ...exporter, online: this.isOnline(exporter) };
  }

  // ---- access policies ----

  /**
   * Creates or replaces each policy, all in one transaction (a file applies whole or
   * not at all), then serves the queue, which they may have reordered or opened.
   */
  async applyPolicies(namespace: string, policies: readonly AccessPolicy[], by: Actor = ADMIN): Promise<void> {
    for (const p of policies) {
      if (p.namespace !== namespace) throw invalidArgument(`policy ${p.name} is for namespace '${p.namespace}', not '${namespace}'`);
    }
    await this.mutate((tx) => {
      for (const p of policies) {
        tx.putPolicy(p);
        tx.audit({ namespace, action: "policy.apply", detail: `${p.name} (${p.policies.length} rules)` });
      }
      this.serve(tx, namespace);
    }, by);
    for (const p of policies) log.info(`access policy ${namespace}/${p.name} applied (${p.policies.length} rules)`);
  }

  async deletePolicy(namespace: string, name: string, by: Actor = ADMIN): Promise<void> {
    await this.mutate((tx) => {
      if (!this.store.listPolicies(namespace).some((p) => p.name === name)) {
        throw notFound(`access policy '${name}' not found in namespace '${namespace}'`);
      }
      tx.deletePolicy(namespace, name);
      tx.audit({ namespace, action: "policy.delete", detail: name });
      this.serve(tx, namespace);
    }, by);
    log.info(`access policy ${namespace}/${name} deleted`);
  }

  listPolicies(namespace: string): AccessPolicy[] {
    return this.store.listPolicies(namespace);
  }

  // ---- audit ----

  /** Entries that stand alone (a refused token): each in a transaction of its own, or all in one. */
  async recordAudit(entries: readonly Omit<NewAuditEntry, "at">[]): Promise<void> {
    if (entries.length === 0) return;
    await this.mutate((tx) => {
      for (const e of entries) tx.audit(e);
    });
  }

  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    // A negative limit is refused at the boundary (services/audit-admin.ts).
    return this.store.listAudit({ ...query, limit: Math.min(query.limit || MAX_AUDIT_LIMIT, MAX_AUDIT_LIMIT) });
  }

  /** Where a pending lease stands in the queue and about how long it will wait; undefined once it is not pending. */
  queueStanding(namespace: string, name: string): QueueStanding | undefined {
    return queueStanding(this.store, namespace, name, this.now(), (e) => this.isOnline(e), this.typicalDurations(namespace));
  }

  /** How long leases of each selector lasted, read from the history at most every 30 s: it changes slowly and is long. */
  private typicalDurations(namespace: string): ReadonlyMap<string, number> {
    const cached = this.typical.get(namespace);
    if (cached && this.now() - cached.at < 30_000) return cached.durations;
    const ended = this.store.listLeases(namespace).filter((l) => l.ended);
    const durations = typicalDurations(ended);
    this.typical.set(namespace, { at: this.now(), durations });
    return durations;
  }

  // ---- leases ----

  /**
   * Creates a lease for `client` and schedules it at once. Requests without a selector
   * or pin, or with inconsistent times, bad tags or context, are rejected with
   * InvalidArgument (as upstream's CreateLease does) rather than stored as Invalid.
   */
  async createLease(namespace: string, client: string, spec: LeaseRequest, leaseId?: string): Promise<Lease> {
    const selectorText = spec.selector?.trim() ? formatSelector(parseOrReject(spec.selector)) : "";
    const exporterName = spec.exporterName || undefined;
    if (!selectorText && !exporterName) throw invalidArgument("a lease needs a selector or an exporter name");
    const times = resolveTimes({ beginTime: spec.beginTime, endTime: spec.endTime, duration: spec.duration });
    const tags = { ...spec.tags };
    const context = { ...spec.context };
    validateTags(tags);
    validateContext(context);
    if (spec.presenceTimeout !== undefined) validatePresenceTimeout(spec.presenceTimeout);
    if (leaseId) validateLeaseId(leaseId);
    return this.mutate((tx) => {
      this.getClient(namespace, client);
      const now = this.now();
      const name = leaseId || uuidv7(now);
      if (this.store.getLease(namespace, name)) {
        throw alreadyExists(`lease '${name}' already exists in namespace '${namespace}'`);
      }
      tx.createLease({
        namespace,
        name,
        client,
        selector: selectorText,
        exporterName,
        ...times,
        allowDisabled: spec.allowDisabled ?? false,
        tags,
        context,
        presenceTimeout: spec.presenceTimeout,
        released: false,
        ended: false,
        conditions: [],
        createdAt: now,
      });
      tx.audit({ namespace, action: "lease.create", lease: name, client, exporter: exporterName, detail: requestText(selectorText, times) });
      this.serve(tx, namespace);
      return this.store.getLease(namespace, name)!;
    }, actorOf("Client", client));
  }

  /**
   * The lease; NotFound also when `asClient` is given and does not own it. A call as
   * its owner is a sign of the client's presence (see LeaseSpec.presenceTimeout).
   */
  getLease(namespace: string, name: string, asClient?: string): Lease {
    const lease = this.store.getLease(namespace, name);
    if (!lease || (asClient !== undefined && lease.client !== asClient)) {
      throw notFound(`lease '${name}' not found in namespace '${namespace}'`);
    }
    if (asClient !== undefined) this.present(namespace, name, asClient);
    return lease;
  }

  /** Presence is kept in memory: a client polling its lease every second must not cost a write each time. */
  private present(namespace: string, name: string, client: string): void {
    const p = this.presence.get(key(namespace, name));
    if (p && p.client === client) p.lastSeen = this.now();
  }

  /**
   * A client dialled the lease's exporter: the lease is in use from now on, and
   * says so in the store (dialedAt), so that a restarted controller knows it too.
   * If the lease had said that nobody had connected, it says so no longer.
   */
  async dialed(namespace: string, name: string): Promise<void> {
    const k = key(namespace, name);
    if (this.inUse.has(k)) return;
    // In use: the lease is kept until it ends, whatever its client's silence (a
    // laptop that sleeps keeps its board); presence guards only leases nobody uses yet.
    this.presence.delete(k);
    const d = this.dials.get(k);
    if (d) d.dialed = true;
    const open = await this.mutate((tx) => {
      const lease = this.store.getLease(namespace, name);
      if (!lease || lease.ended) return false;
      // Said by this replica or by the leader: the stored Ready message tells.
      const unflag = lease.exporter !== undefined &&
        lease.conditions.some((c) => c.type === "Ready" && c.status === "True" && c.message === undialedMessage(lease.exporter!));
      if (lease.dialedAt !== undefined && !unflag) return true;
      lease.dialedAt ??= this.now();
      if (unflag) lease.conditions = setCondition(lease.conditions, "Ready", true, "Ready", ACQUIRED_MESSAGE, this.now());
      tx.saveLease(lease);
      return true;
    });
    if (open) this.inUse.add(k);
  }

  listLeases(namespace: string, opts: LeaseListOptions = {}): Lease[] {
    const selector = opts.selector ? parseOrReject(opts.selector) : undefined;
    const tags = opts.tags ? parseOrReject(opts.tags) : undefined;
    return this.store
      .listLeases(namespace, { client: opts.client, onlyActive: opts.onlyActive ?? true })
      .filter((l) => (!selector || matches(selector, leaseLabels(l))) && (!tags || matches(tags, l.tags)));
  }

  /** Changes the requested times (rules: `updatedTimes`) or transfers an active lease to another client. */
  async updateLease(namespace: string, name: string, patch: LeaseUpdate, byClient?: string): Promise<Lease> {
    return this.mutate((tx) => {
      const lease = this.getLease(namespace, name, byClient);
      if (lease.ended) throw failedPrecondition(`lease '${name}' has already ended`);
      const refs = { namespace, lease: name, client: lease.client, exporter: lease.exporter };
      if (patch.beginTime !== undefined || patch.duration !== undefined || patch.endTime !== undefined) {
        const before = { end: leaseExpiresAt(lease), duration: lease.duration };
        Object.assign(lease, updatedTimes(lease, patch));
        this.checkMaximumDuration(lease);
        tx.audit({ ...refs, ...timesChange(before, { end: leaseExpiresAt(lease), duration: lease.duration }) });
      }
      if (patch.client !== undefined && patch.client !== lease.client) {
        if (lease.exporter === undefined) throw failedPrecondition(`cannot transfer lease '${name}': it has not started yet`);
        this.getClient(namespace, patch.client);
        tx.audit({ ...refs, action: "lease.update", reason: "Transferred", detail: `transferred from ${lease.client} to ${patch.client}` });
        lease.client = patch.client;
      }
      tx.saveLease(lease);
      this.serve(tx, namespace);
      return this.store.getLease(namespace, name)!;
    }, byClient !== undefined ? actorOf("Client", byClient) : ADMIN);
  }

  /** An extension past what the access policy granting the lease's exporter allows is refused, naming the policy. */
  private checkMaximumDuration(lease: Lease): void {
    if (lease.exporter === undefined || lease.effectiveBeginTime === undefined) return;
    const exporter = this.store.getExporter(lease.namespace, lease.exporter);
    if (!exporter) return;
    const access = new PassAccess(this.store, lease.namespace).of(lease.client, exporter);
    const max = access?.maximumDurationMs;
    const end = leaseExpiresAt(lease);
    if (max === undefined || end === undefined || end - lease.effectiveBeginTime <= max) return;
    throw failedPrecondition(
      `access policy ${access!.grantedBy} allows leases of at most ${formatDuration(max)}: lease '${lease.name}' cannot last ${formatDuration(end - lease.effectiveBeginTime)}`,
    );
  }

  /**
   * Releases the lease: it ends now (if it had not) and its exporter goes to the next
   * pending lease. Releasing twice is FailedPrecondition, as upstream, unless the first
   * release was cut short (released, not ended): then this one ends it.
   */
  async releaseLease(namespace: string, name: string, asClient?: string): Promise<Lease> {
    return this.mutate((tx) => this.release(tx, namespace, name, asClient), asClient !== undefined ? actorOf("Client", asClient) : ADMIN);
  }

  private release(tx: StateTransaction, namespace: string, name: string, asClient?: string): Lease {
    const lease = this.getLease(namespace, name, asClient);
    // Released and still open is a release cut short (see serveNamespace): this one finishes it.
    if (lease.released && lease.ended) throw failedPrecondition(`lease '${name}' has already been released`);
    lease.released = true;
    if (lease.ended) tx.saveLease(lease);
    else endReleased(this.pass, tx, lease);
    this.serve(tx, namespace);
    return this.store.getLease(namespace, name)!;
  }

  /**
   * The exporter asks to end the lease it holds (upstream: ReleaseLease or
   * ReportStatus(release_lease) from an exporter). Returns the lease, or null when it
   * holds none; a lease already released is left as it is.
   */
  async releaseExporterLease(namespace: string, exporterName: string): Promise<Lease | null> {
    return this.mutate((tx) => {
      const exporter = this.requireExporter(namespace, exporterName);
      if (!exporter.leaseName) return null;
      const lease = this.store.getLease(namespace, exporter.leaseName)!;
      if (lease.released && lease.ended) return lease;
      if (exporter.status !== ExporterStatus.BEFORE_LEASE_HOOK_FAILED) return this.release(tx, namespace, lease.name);
      // Its client learns why from the lease (a Dial says it too), not just that it was released.
      lease.released = true;
      endLease(this.pass, tx, lease, "BeforeLeaseHookFailed", exporter.statusMessage || `exporter ${exporterName}'s beforeLease hook failed`);
      this.serve(tx, namespace);
      return this.store.getLease(namespace, lease.name)!;
    }, actorOf("Exporter", exporterName));
  }

  // ---- timers ----

  /**
   * Starts timers: ends what expired while stopped, serves every namespace once, arms
   * expiry and scheduled-begin timers for every open lease, and starts the sweep.
   * Presence clocks of the leases nobody has dialled, waiting or Ready, start now:
   * clients had no controller to talk to while it was down.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.startedAt = this.now();
    if (this.isLeading()) this.timers.start();
    await this.mutate((tx) => {
      const open = this.store.listLeases(undefined, { onlyActive: true });
      const namespaces = new Set([...this.store.listExporters().map((e) => e.namespace), ...open.map((l) => l.namespace)]);
      for (const ns of namespaces) this.serve(tx, ns);
    });
    for (const lease of this.store.listLeases(undefined, { onlyActive: true })) {
      this.timers.arm(lease);
      if (lease.dialedAt !== undefined) this.inUse.add(key(lease.namespace, lease.name));
      // With replicas, a starting one cannot know whose clients call which replica: the
      // presence of leases made before it started is left to their makers.
      else if (lease.presenceTimeout !== undefined && this.isLeading()) {
        this.presence.set(key(lease.namespace, lease.name), {
          namespace: lease.namespace, name: lease.name, client: lease.client, timeoutMs: lease.presenceTimeout, lastSeen: this.startedAt,
        });
      }
    }
    this.armSweep();
  }

  stop(): void {
    this.running = false;
    this.timers.stop();
    if (this.sweepHandle !== undefined) this.clearTimer(this.sweepHandle);
    this.sweepHandle = undefined;
    if (this.passHandle !== undefined) this.clearTimer(this.passHandle);
    this.passHandle = undefined;
    for (const k of [...this.disconnected.keys()]) this.forgetDisconnect(k);
  }

  /**
   * What the clock says about exporters and leases, in one transaction:
   * - exporters past their grace (see isOnline) and not yet OFFLINE are marked so (as
   *   upstream's reconciler does): their current lease goes on, they get no new one;
   * - lastSeen of exporters whose stream is open is refreshed once `heartbeatMs` old.
   *   A write and commit per stream every 10 s (upstream's heartbeat) was most of an
   *   idle controller's work with thousands of exporters. The refresh is not
   *   announced: while its stream is open an exporter is online whatever lastSeen
   *   says; lastSeen matters after the stream (or this process) is gone;
   * - leases nobody uses yet (waiting, or Ready and never dialled) whose client has
   *   shown no sign for its presence timeout are given back;
   * - Ready leases that no client has dialled for `undialedAfterMs` say so.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    await this.mutate((tx) => {
      const stale: ExporterRecord[] = [];
      const beating = new Map<string, string[]>();
      for (const e of this.store.listExporters()) {
        if (this.streams.has(key(e.namespace, e.name))) {
          if (e.lastSeen !== null && now - e.lastSeen < this.heartbeatMs) continue;
          const names = beating.get(e.namespace);
          if (names) names.push(e.name);
          else beating.set(e.namespace, [e.name]);
        } else if (e.status !== ExporterStatus.OFFLINE && !this.isOnline(e)) {
          stale.push(e);
        }
      }
      for (const [namespace, names] of beating) tx.setLastSeen(namespace, names, now);
      const changed = new Set<string>();

      // On every replica: each knows the presence of the clients that call it (see track).
      for (const [k, p] of [...this.presence]) {
        if (now - p.lastSeen < p.timeoutMs) continue;
        const lease = this.store.getLease(p.namespace, p.name);
        if (!lease || lease.ended || lease.dialedAt !== undefined) {
          this.presence.delete(k);
          continue;
        }
        lease.released = true;
        const message = `no sign of client ${p.client} for ${p.timeoutMs / 1000} s: the lease was given back`;
        endLease(this.pass, tx, lease, "ClientGone", message);
        log.info(`lease ${p.namespace}/${p.name}: ${message}`);
        changed.add(p.namespace);
      }

      // The rest is the leader's: every replica refreshes its own streams' lastSeen, by
      // which the leader judges exporters connected to the others.
      if (this.isLeading()) {
        for (const e of stale) {
          this.markOffline(tx, e);
          changed.add(e.namespace);
        }
        for (const d of this.dials.values()) {
          if (d.dialed || d.flagged || now - d.readyAt < this.undialedAfterMs) continue;
          // Flagged once committed: a store that re-runs this transaction must flag it again.
          tx.afterCommit(() => (d.flagged = true));
          const lease = this.store.getLease(d.namespace, d.name);
          // dialedAt: a client dialled it through another replica.
          if (!lease || lease.ended || lease.exporter === undefined || lease.dialedAt !== undefined) continue;
          lease.conditions = setCondition(lease.conditions, "Ready", true, "Ready", undialedMessage(lease.exporter), now);
          tx.saveLease(lease);
        }
      }

      for (const ns of changed) this.serve(tx, ns);
    });
  }

  private armSweep(): void {
    this.sweepHandle = this.setTimer(() => {
      this.sweepHandle = undefined;
      if (!this.running) return;
      // Re-armed at once rather than after the commit: SQLite commits before sweep()
      // returns, and a Kubernetes sweep that outlasts the interval (API server slow
      // or gone) overlaps the next one safely, each a transaction with preconditions.
      this.sweep().catch((err) => log.error(`offline sweep failed: ${(err as Error).message}`));
      this.armSweep();
    }, this.sweepIntervalMs);
  }
}
