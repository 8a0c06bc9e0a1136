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
  leaseLabels,
  parseOrReject,
  resolveTimes,
  updatedTimes,
  validateContext,
  validateDnsLabel,
  validateLeaseId,
  validateTags,
} from "./lease-rules.ts";
import type {
  Client,
  DeviceReport,
  Exporter,
  ExporterRecord,
  Labels,
  Lease,
  LeaseListOptions,
  LeaseRequest,
  LeaseUpdate,
  PrincipalRef,
} from "./model.ts";
import { endLease, type PassContext, serveNamespace } from "./queue.ts";
import type { Store } from "./store/store.ts";

export { leaseExpiresAt } from "./lease-rules.ts";

export interface ControllerStateOptions {
  now?: () => number;
  /** How long an exporter counts as online after its last sign of life (upstream: 1 min). */
  offlineGraceMs?: number;
  /** How often the offline sweep runs while started. */
  sweepIntervalMs?: number;
  /** How often the sweep refreshes lastSeen of exporters with an open Status stream (upstream: 10 s). */
  heartbeatMs?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export interface ControllerEvents {
  lease: Lease;
  exporter: Exporter;
  /** Tokens issued to this principal before now are no longer valid (deleted or rotated). */
  revoked: PrincipalRef;
}

interface Changes {
  leases: Map<string, Lease>;
  exporters: Map<string, ExporterRecord>;
  revoked: PrincipalRef[];
}

/** Register may only set labels under this prefix; the rest belong to the admin. */
const REGISTERED_LABEL_PREFIX = "jumpstarter.dev/";

const key = (namespace: string, name: string) => `${namespace}/${name}`;
const log = getLogger("controller");

export class ControllerState {
  private readonly now: () => number;
  private readonly offlineGraceMs: number;
  private readonly sweepIntervalMs: number;
  private readonly heartbeatMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  /** Open Status streams per exporter: in memory only, since streams die with the process. */
  private readonly streams = new Map<string, number>();
  private readonly timers: LeaseTimers;
  private readonly events = new Emitter<ControllerEvents>();
  private sweepHandle: unknown = undefined;
  private running = false;
  private changes: Changes | null = null;
  private readonly pass: PassContext;

  constructor(
    readonly store: Store,
    opts: ControllerStateOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.offlineGraceMs = opts.offlineGraceMs ?? 60_000;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 5_000;
    this.heartbeatMs = opts.heartbeatMs ?? 10_000;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.timers = new LeaseTimers({ now: this.now, setTimer: this.setTimer, clearTimer: this.clearTimer }, (ns, name) => {
      this.mutate(() => this.serve(ns));
      return this.store.getLease(ns, name);
    });
    this.pass = {
      store,
      now: this.now,
      isOnline: (e) => this.isOnline(e),
      saveLease: (l) => this.saveLease(l),
      saveExporter: (e) => this.saveExporter(e),
    };
  }

  // ---- events ----

  /** Subscribes to committed changes; returns the unsubscribe function. Do not mutate the values. */
  on<K extends keyof ControllerEvents>(event: K, fn: (value: ControllerEvents[K]) => void): () => void {
    return this.events.on(event, fn);
  }

  // ---- transactions ----

  /** Runs fn in one store transaction; after it commits, fires events and re-arms timers. */
  private mutate<T>(fn: () => T): T {
    if (this.changes) return fn();
    const changes: Changes = { leases: new Map(), exporters: new Map(), revoked: [] };
    this.changes = changes;
    let result: T;
    try {
      result = this.store.transaction(fn);
    } finally {
      this.changes = null;
    }
    for (const lease of changes.leases.values()) {
      this.timers.arm(lease);
      this.events.emit("lease", lease);
    }
    for (const exporter of changes.exporters.values()) this.events.emit("exporter", this.withOnline(exporter));
    for (const ref of changes.revoked) this.events.emit("revoked", ref);
    return result;
  }

  private saveLease(lease: Lease): void {
    this.store.updateLease(lease);
    this.changes!.leases.set(key(lease.namespace, lease.name), lease);
  }

  private saveExporter(exporter: ExporterRecord): void {
    this.store.updateExporter(exporter);
    this.changes!.exporters.set(key(exporter.namespace, exporter.name), exporter);
  }

  // ---- principals ----

  createClient(namespace: string, name: string, labels: Labels = {}): Client {
    validateDnsLabel("namespace", namespace);
    validateDnsLabel("client name", name);
    checkLabels(labels, "client labels");
    return this.mutate(() => {
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
      this.store.createClient(client);
      return client;
    });
  }

  createExporter(namespace: string, name: string, labels: Labels = {}): Exporter {
    validateDnsLabel("namespace", namespace);
    validateDnsLabel("exporter name", name);
    checkLabels(labels, "exporter labels");
    return this.mutate(() => {
      if (this.store.getExporter(namespace, name)) {
        throw alreadyExists(`exporter '${name}' already exists in namespace '${namespace}'`);
      }
      const exporter: ExporterRecord = {
        namespace,
        name,
        uid: crypto.randomUUID(),
        labels: { ...labels },
        enabled: true,
        tokenId: randomId(),
        devices: [],
        status: ExporterStatus.UNSPECIFIED,
        statusMessage: "",
        registered: false,
        lastSeen: null,
        leaseName: null,
        createdAt: this.now(),
      };
      this.store.createExporter(exporter);
      this.changes!.exporters.set(key(namespace, name), exporter);
      this.serve(namespace);
      return this.withOnline(exporter);
    });
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

  /** Admin changes: labels (replacing all) and the enabled flag. */
  updateExporter(namespace: string, name: string, patch: { labels?: Labels; enabled?: boolean }): Exporter {
    if (patch.labels) checkLabels(patch.labels, "exporter labels");
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      if (patch.labels) exporter.labels = { ...patch.labels };
      if (patch.enabled !== undefined) exporter.enabled = patch.enabled;
      return this.touch(exporter);
    });
  }

  /** Deletes the client and releases all its leases; its tokens stop working at once. */
  deleteClient(namespace: string, name: string): void {
    this.mutate(() => {
      this.getClient(namespace, name);
      for (const lease of this.store.listLeases(namespace, { client: name, onlyActive: true })) {
        lease.released = true;
        endLease(this.pass, lease, "Released", "The lease was released because its client was deleted");
      }
      this.store.deleteClient(namespace, name);
      this.changes!.revoked.push({ kind: "Client", namespace, name });
      this.serve(namespace);
    });
  }

  /** Deletes the exporter; the lease holding it ends, pending leases pinned to it become unsatisfiable. */
  deleteExporter(namespace: string, name: string): void {
    this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      if (exporter.leaseName) {
        const lease = this.store.getLease(namespace, exporter.leaseName);
        if (lease && !lease.ended) endLease(this.pass, lease, "ExporterDeleted", `Exporter ${name} was deleted`);
      }
      this.store.deleteExporter(namespace, name);
      this.changes!.exporters.delete(key(namespace, name));
      this.changes!.revoked.push({ kind: "Exporter", namespace, name });
      this.serve(namespace);
    });
    this.streams.delete(key(namespace, name));
  }

  /** Gives the principal a new token id, so tokens carrying the old one are refused. */
  rotateToken(kind: PrincipalRef["kind"], namespace: string, name: string): string {
    return this.mutate(() => {
      const tokenId = randomId();
      if (kind === "Client") {
        this.store.updateClient({ ...this.getClient(namespace, name), tokenId });
      } else {
        this.saveExporter({ ...this.requireExporter(namespace, name), tokenId });
      }
      this.changes!.revoked.push({ kind, namespace, name });
      return tokenId;
    });
  }

  // ---- exporter lifecycle ----

  /** Register: replaces the exporter's `jumpstarter.dev/*` labels with the request's and stores its driver reports. */
  register(namespace: string, name: string, labels: Labels, devices: DeviceReport[]): Exporter {
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      const next: Labels = {};
      for (const [k, v] of Object.entries(exporter.labels)) if (!k.startsWith(REGISTERED_LABEL_PREFIX)) next[k] = v;
      for (const [k, v] of Object.entries(labels)) if (k.startsWith(REGISTERED_LABEL_PREFIX)) next[k] = v;
      checkLabels(next, `labels registered by exporter '${name}'`);
      Object.assign(exporter, { labels: next, devices, registered: true });
      return this.touch(exporter);
    });
  }

  /** Unregister (the exporter shutting down): its reports go, it is marked OFFLINE. Its lease stays. */
  unregister(namespace: string, name: string, reason: string): Exporter {
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, {
        devices: [],
        registered: false,
        status: ExporterStatus.OFFLINE,
        statusMessage: reason || "Exporter unregistered",
      });
      return this.touch(exporter);
    });
  }

  reportStatus(namespace: string, name: string, status: ExporterStatus, message: string): Exporter {
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      Object.assign(exporter, { status, statusMessage: message, lastSeen: this.now() });
      return this.touch(exporter);
    });
  }

  /**
   * A Status stream opened: the exporter is online while any is open. Like upstream, a
   * stale OFFLINE status is cleared, since old exporters never report another.
   */
  statusStreamOpened(namespace: string, name: string): Exporter {
    const k = key(namespace, name);
    this.streams.set(k, (this.streams.get(k) ?? 0) + 1);
    try {
      return this.mutate(() => {
        const exporter = this.requireExporter(namespace, name);
        exporter.lastSeen = this.now();
        if (exporter.status === ExporterStatus.OFFLINE) {
          Object.assign(exporter, { status: ExporterStatus.UNSPECIFIED, statusMessage: "" });
        }
        return this.touch(exporter);
      });
    } catch (err) {
      this.dropStream(k);
      throw err;
    }
  }

  /** A Status stream closed: the exporter stays online for offlineGraceMs. Null if it was deleted meanwhile. */
  statusStreamClosed(namespace: string, name: string): Exporter | null {
    this.dropStream(key(namespace, name));
    return this.mutate(() => {
      const exporter = this.store.getExporter(namespace, name);
      if (!exporter) return null;
      exporter.lastSeen = this.now();
      return this.touch(exporter);
    });
  }

  /** A sign of life from an exporter (while its Status stream is open, the sweep refreshes lastSeen instead). */
  heartbeat(namespace: string, name: string): Exporter {
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, name);
      exporter.lastSeen = this.now();
      return this.touch(exporter);
    });
  }

  private dropStream(k: string): void {
    const n = (this.streams.get(k) ?? 0) - 1;
    if (n > 0) this.streams.set(k, n);
    else this.streams.delete(k);
  }

  /** Saves an exporter change and serves the queue, since it may have become eligible. */
  private touch(exporter: ExporterRecord): Exporter {
    this.saveExporter(exporter);
    this.serve(exporter.namespace);
    return this.withOnline(this.store.getExporter(exporter.namespace, exporter.name)!);
  }

  /** The scheduling pass for one namespace, inside the running transaction. */
  private serve(namespace: string): void {
    serveNamespace(this.pass, namespace);
  }

  private requireExporter(namespace: string, name: string): ExporterRecord {
    const exporter = this.store.getExporter(namespace, name);
    if (!exporter) throw notFound(`exporter '${name}' not found in namespace '${namespace}'`);
    return exporter;
  }

  private isOnline(exporter: Readonly<ExporterRecord>): boolean {
    if (exporter.status === ExporterStatus.OFFLINE) return false;
    if (this.streams.has(key(exporter.namespace, exporter.name))) return true;
    return exporter.lastSeen !== null && this.now() - exporter.lastSeen <= this.offlineGraceMs;
  }

  private withOnline(exporter: ExporterRecord): Exporter {
    return { ...exporter, online: this.isOnline(exporter) };
  }

  // ---- leases ----

  /**
   * Creates a lease for `client` and schedules it at once. Requests without a selector
   * or pin, or with inconsistent times, bad tags or context, are rejected with
   * InvalidArgument (as upstream's CreateLease does) rather than stored as Invalid.
   */
  createLease(namespace: string, client: string, spec: LeaseRequest, leaseId?: string): Lease {
    const selectorText = spec.selector?.trim() ? formatSelector(parseOrReject(spec.selector)) : "";
    const exporterName = spec.exporterName || undefined;
    if (!selectorText && !exporterName) throw invalidArgument("a lease needs a selector or an exporter name");
    const times = resolveTimes({ beginTime: spec.beginTime, endTime: spec.endTime, duration: spec.duration });
    const tags = { ...spec.tags };
    const context = { ...spec.context };
    validateTags(tags);
    validateContext(context);
    if (leaseId) validateLeaseId(leaseId);
    return this.mutate(() => {
      this.getClient(namespace, client);
      const now = this.now();
      const name = leaseId || uuidv7(now);
      if (this.store.getLease(namespace, name)) {
        throw alreadyExists(`lease '${name}' already exists in namespace '${namespace}'`);
      }
      const lease = this.store.createLease({
        namespace,
        name,
        client,
        selector: selectorText,
        exporterName,
        ...times,
        allowDisabled: spec.allowDisabled ?? false,
        tags,
        context,
        released: false,
        ended: false,
        conditions: [],
        createdAt: now,
      });
      this.changes!.leases.set(key(namespace, name), lease);
      this.serve(namespace);
      return this.store.getLease(namespace, name)!;
    });
  }

  /** The lease; NotFound also when `asClient` is given and does not own it. */
  getLease(namespace: string, name: string, asClient?: string): Lease {
    const lease = this.store.getLease(namespace, name);
    if (!lease || (asClient !== undefined && lease.client !== asClient)) {
      throw notFound(`lease '${name}' not found in namespace '${namespace}'`);
    }
    return lease;
  }

  listLeases(namespace: string, opts: LeaseListOptions = {}): Lease[] {
    const selector = opts.selector ? parseOrReject(opts.selector) : undefined;
    const tags = opts.tags ? parseOrReject(opts.tags) : undefined;
    return this.store
      .listLeases(namespace, { client: opts.client, onlyActive: opts.onlyActive ?? true })
      .filter((l) => (!selector || matches(selector, leaseLabels(l))) && (!tags || matches(tags, l.tags)));
  }

  /** Changes the requested times (rules: `updatedTimes`) or transfers an active lease to another client. */
  updateLease(namespace: string, name: string, patch: LeaseUpdate, byClient?: string): Lease {
    return this.mutate(() => {
      const lease = this.getLease(namespace, name, byClient);
      if (lease.ended) throw failedPrecondition(`lease '${name}' has already ended`);
      if (patch.beginTime !== undefined || patch.duration !== undefined || patch.endTime !== undefined) {
        Object.assign(lease, updatedTimes(lease, patch));
      }
      if (patch.client !== undefined && patch.client !== lease.client) {
        if (lease.exporter === undefined) throw failedPrecondition(`cannot transfer lease '${name}': it has not started yet`);
        this.getClient(namespace, patch.client);
        lease.client = patch.client;
      }
      this.saveLease(lease);
      this.serve(namespace);
      return this.store.getLease(namespace, name)!;
    });
  }

  /**
   * Releases the lease: it ends now (if it had not) and its exporter goes to the next
   * pending lease. Releasing twice is FailedPrecondition, as upstream.
   */
  releaseLease(namespace: string, name: string, asClient?: string): Lease {
    return this.mutate(() => {
      const lease = this.getLease(namespace, name, asClient);
      if (lease.released) throw failedPrecondition(`lease '${name}' has already been released`);
      lease.released = true;
      if (lease.ended) this.saveLease(lease);
      else endLease(this.pass, lease, "Released", "The lease was released");
      this.serve(namespace);
      return this.store.getLease(namespace, name)!;
    });
  }

  /**
   * The exporter asks to end the lease it holds (upstream: ReleaseLease or
   * ReportStatus(release_lease) from an exporter). Returns the lease, or null when it
   * holds none; a lease already released is left as it is.
   */
  releaseExporterLease(namespace: string, exporterName: string): Lease | null {
    return this.mutate(() => {
      const exporter = this.requireExporter(namespace, exporterName);
      if (!exporter.leaseName) return null;
      const lease = this.store.getLease(namespace, exporter.leaseName)!;
      return lease.released ? lease : this.releaseLease(namespace, lease.name);
    });
  }

  // ---- timers ----

  /**
   * Starts timers: ends what expired while stopped, serves every namespace once, arms
   * expiry and scheduled-begin timers for every open lease, and starts the offline sweep.
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.timers.start();
    this.mutate(() => {
      const open = this.store.listLeases(undefined, { onlyActive: true });
      const namespaces = new Set([...this.store.listExporters().map((e) => e.namespace), ...open.map((l) => l.namespace)]);
      for (const ns of namespaces) this.serve(ns);
    });
    for (const lease of this.store.listLeases(undefined, { onlyActive: true })) this.timers.arm(lease);
    this.armSweep();
  }

  stop(): void {
    this.running = false;
    this.timers.stop();
    if (this.sweepHandle !== undefined) this.clearTimer(this.sweepHandle);
    this.sweepHandle = undefined;
  }

  /**
   * Marks exporters OFFLINE whose last sign of life is older than the grace period and
   * that have no Status stream open (as upstream's reconciler does). Their current
   * lease goes on; they get no new one.
   *
   * It also refreshes lastSeen, once `heartbeatMs` old, of the exporters whose stream
   * is open, all in this one transaction. A write and commit per stream every 10 s
   * (upstream's heartbeat) was most of an idle controller's work with thousands of
   * exporters. The refresh is not announced as a change: while its stream is open an
   * exporter is online whatever lastSeen says; lastSeen matters after the stream (or
   * this process) is gone.
   */
  sweep(): void {
    const now = this.now();
    this.mutate(() => {
      const stale: ExporterRecord[] = [];
      const beating = new Map<string, string[]>();
      for (const e of this.store.listExporters()) {
        if (this.streams.has(key(e.namespace, e.name))) {
          if (e.lastSeen !== null && now - e.lastSeen < this.heartbeatMs) continue;
          const names = beating.get(e.namespace);
          if (names) names.push(e.name);
          else beating.set(e.namespace, [e.name]);
        } else if (e.status !== ExporterStatus.OFFLINE && e.lastSeen !== null && now - e.lastSeen > this.offlineGraceMs) {
          stale.push(e);
        }
      }
      for (const [namespace, names] of beating) this.store.setLastSeen(namespace, names, now);
      for (const e of stale) {
        Object.assign(e, {
          status: ExporterStatus.OFFLINE,
          statusMessage: `Connection lost: last seen more than ${Math.round(this.offlineGraceMs / 1000)} s ago`,
        });
        this.saveExporter(e);
      }
      for (const ns of new Set(stale.map((e) => e.namespace))) this.serve(ns);
    });
  }

  private armSweep(): void {
    this.sweepHandle = this.setTimer(() => {
      this.sweepHandle = undefined;
      if (!this.running) return;
      try {
        this.sweep();
      } catch (err) {
        log.error(`offline sweep failed: ${(err as Error).message}`);
      }
      if (this.running) this.armSweep();
    }, this.sweepIntervalMs);
  }
}
