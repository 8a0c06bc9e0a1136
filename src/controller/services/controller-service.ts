/**
 * ControllerService (jumpstarter.v1): the exporter's side (Register, Status,
 * Listen, ReportStatus, Unregister) and the client's Dial, plus upstream's legacy
 * lease calls. Router assignments travel from Dial to Listen through ListenQueues.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { StopSignal } from "../../common/broadcast-signal.ts";
import { formatDuration } from "../../common/duration.ts";
import { formatSelector, fromLabelSelector, parseSelector, toLabelSelector } from "../../common/selector.ts";
import { getLogger } from "../../common/log.ts";
import type { ControllerService } from "../../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { ConditionSchema, TimeSchema } from "../../gen/jumpstarter/v1/kubernetes_pb.ts";
import { identityOf, type RouterTokens } from "../auth.ts";
import { healthReport } from "../convert.ts";
import type { DeviceReport, Lease } from "../model.ts";
import type { ControllerState } from "../state.ts";
import { rpc, rpcError, shuttingDown } from "./errors.ts";
import type { ListenQueues } from "./listen-queues.ts";

const log = getLogger("controller");
/** How long Dial waits for the exporter to open Listen for a just-assigned lease. */
const DIAL_WAIT_MS = 15_000;

export interface ControllerServiceDeps {
  state: ControllerState;
  routerTokens: RouterTokens;
  queues: ListenQueues;
  /** Router endpoints handed out, in turn. */
  routers: () => string[];
  /** Aborted when the controller stops: open streams and waiting Dials end with UNAVAILABLE. */
  shutdown?: StopSignal;
}

function me(ctx: HandlerContext, kind: "Client" | "Exporter") {
  const id = identityOf(ctx);
  if (id.kind !== kind) throw new ConnectError(`this call is for ${kind.toLowerCase()}s`, Code.PermissionDenied);
  return { namespace: id.namespace, name: id.name };
}

const queueKey = (namespace: string, lease: string) => `${namespace}/${lease}`;

/** What the exporter's Status stream says: is it leased, to which lease and client. */
function statusOf(state: ControllerState, namespace: string, exporter: string) {
  const e = state.getExporter(namespace, exporter);
  if (!e.leaseName) return { leased: false, context: {} };
  let lease: Lease | undefined;
  try {
    lease = state.getLease(namespace, e.leaseName);
  } catch {
    lease = undefined;
  }
  return { leased: true, leaseName: e.leaseName, clientName: lease?.client, context: lease?.context ?? {} };
}

/** Callbacks by `namespace/name`, so that an event reaches its own streams only. */
class Watchers {
  private readonly byKey = new Map<string, Set<() => void>>();

  add(key: string, fn: () => void): () => void {
    let set = this.byKey.get(key);
    if (!set) this.byKey.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.byKey.get(key) === set) this.byKey.delete(key);
    };
  }

  notify(key: string): void {
    for (const fn of this.byKey.get(key) ?? []) fn();
  }
}

/**
 * One subscription to the state for all streams, dispatched by key: with a listener
 * per stream, every change would call every open Status stream (thousands with many
 * exporters) to find the one it concerns.
 */
function streamWatchers(state: ControllerState) {
  const watch = { exporter: new Watchers(), revoked: new Watchers(), leaseEnded: new Watchers() };
  state.on("exporter", (e) => watch.exporter.notify(queueKey(e.namespace, e.name)));
  state.on("lease", (l) => {
    if (l.exporter !== undefined) watch.exporter.notify(queueKey(l.namespace, l.exporter));
    if (l.ended) watch.leaseEnded.notify(queueKey(l.namespace, l.name));
  });
  state.on("revoked", (p) => {
    if (p.kind === "Exporter") watch.revoked.notify(queueKey(p.namespace, p.name));
  });
  return watch;
}

/**
 * One signal that aborts with the first of `signals`. `close` removes its listeners:
 * the controller's shutdown signal lives as long as the process, and must not
 * collect one listener per Dial.
 */
function anyOf(signals: StopSignal[]): { signal: AbortSignal; close(): void } {
  const abort = new AbortController();
  const fire = () => abort.abort();
  const close = () => {
    for (const s of signals) s.removeEventListener("abort", fire);
  };
  for (const s of signals) {
    if (s.aborted) abort.abort();
    else s.addEventListener("abort", fire, { once: true });
  }
  return { signal: abort.signal, close };
}

/**
 * Why a Dial cannot reach the exporter now, or undefined when it can: its Status
 * stream is gone (the exporter cannot be told to listen), or it said it is going
 * OFFLINE. The lease is not touched: the exporter may come back.
 */
function unreachable(state: ControllerState, namespace: string, exporter: string, lease: string): ConnectError | undefined {
  const e = state.getExporter(namespace, exporter);
  const connected = state.isConnected(namespace, exporter);
  if (connected && e.online) return undefined;
  const ago = e.lastSeen === null ? "it has never connected" : `last connected ${formatDuration(Math.max(0, Date.now() - e.lastSeen))} ago`;
  const why = connected ? `it reported OFFLINE${e.statusMessage ? ` (${e.statusMessage})` : ""}` : `not connected to the controller (${ago})`;
  return new ConnectError(`exporter ${exporter} is offline: ${why}; lease ${lease} is kept: try again when the exporter is back`, Code.Unavailable);
}

export function controllerService(deps: ControllerServiceDeps): ServiceImpl<typeof ControllerService> {
  const { state, queues } = deps;
  const shutdown: StopSignal = deps.shutdown ?? new AbortController().signal;
  const watch = streamWatchers(state);
  let nextRouter = 0;

  /** A signal that aborts at the first change of `key` that `fired` accepts; `close` drops the watch. */
  const watchFor = (watchers: Watchers, key: string, fired: () => boolean = () => true) => {
    const abort = new AbortController();
    const close = watchers.add(key, () => {
      if (!fired()) return;
      close();
      abort.abort();
    });
    return { signal: abort.signal, close };
  };

  return {
    register: (req, ctx) => rpc(async () => {
      const { namespace, name } = me(ctx, "Exporter");
      const devices: DeviceReport[] = req.reports.map((r) => ({
        uuid: r.uuid,
        parentUuid: r.parentUuid,
        labels: r.labels,
        description: r.description,
        methodsDescription: r.methodsDescription,
      }));
      const e = await state.register(namespace, name, req.labels, devices);
      log.info(`exporter ${namespace}/${name} registered (${devices.length} drivers)`);
      return { uuid: e.uid };
    }),

    unregister: (req, ctx) => rpc(async () => {
      const { namespace, name } = me(ctx, "Exporter");
      await state.unregister(namespace, name, req.reason);
      log.info(`exporter ${namespace}/${name} unregistered${req.reason ? `: ${req.reason}` : ""}`);
      return {};
    }),

    reportStatus: (req, ctx) => rpc(async () => {
      const { namespace, name } = me(ctx, "Exporter");
      await state.reportStatus(namespace, name, req.status, req.message ?? "", healthReport(req.health));
      if (req.releaseLease) await state.releaseExporterLease(namespace, name);
      return {};
    }),

    status: async function* (_req, ctx) {
      const { namespace, name } = me(ctx, "Exporter");
      try {
        await state.statusStreamOpened(namespace, name);
      } catch (e) {
        throw rpcError(e);
      }
      // `changed` keeps a change that comes while the stream is busy sending (at the
      // `yield`), when nothing waits on `wake`: it would otherwise go unseen until some
      // later change, leaving the exporter serving a lease that has ended.
      let wake: (() => void) | undefined;
      let changed = false;
      const poke = () => {
        changed = true;
        wake?.();
      };
      let revoked = false;
      const who = queueKey(namespace, name);
      const offChange = watch.exporter.add(who, poke);
      const offRevoked = watch.revoked.add(who, () => {
        revoked = true;
        poke();
      });
      // Not a Promise.race with an `aborted` promise: each race would leave a reaction
      // on it, and a stream lives for days, woken at every change of its exporter.
      ctx.signal.addEventListener("abort", poke, { once: true });
      shutdown.addEventListener("abort", poke, { once: true });
      let last = "";
      try {
        while (!ctx.signal.aborted) {
          if (shutdown.aborted) throw shuttingDown();
          if (revoked) throw new ConnectError(`the exporter '${name}' was deleted or its token was rotated`, Code.Unauthenticated);
          changed = false;
          let current;
          try {
            current = statusOf(state, namespace, name);
          } catch (e) {
            throw rpcError(e);
          }
          const key = JSON.stringify(current);
          if (key !== last) {
            last = key;
            yield current;
          }
          if (!changed) await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      } finally {
        ctx.signal.removeEventListener("abort", poke);
        shutdown.removeEventListener("abort", poke);
        offChange();
        offRevoked();
        // The exporter may have been deleted meanwhile.
        await state.statusStreamClosed(namespace, name).catch(() => {});
      }
    },

    listen: async function* (req, ctx) {
      const { namespace, name } = me(ctx, "Exporter");
      let lease: Lease;
      try {
        lease = state.getLease(namespace, req.leaseName);
      } catch (e) {
        throw rpcError(e);
      }
      if (lease.exporter !== name || lease.ended) {
        throw new ConnectError(`lease ${req.leaseName} is not held by exporter ${name}`, Code.PermissionDenied);
      }
      // The stream ends with the lease (OK), or with the controller (UNAVAILABLE).
      const ended = watchFor(watch.leaseEnded, queueKey(namespace, req.leaseName));
      const done = anyOf([ctx.signal, shutdown, ended.signal]);
      try {
        for await (const a of queues.listen(queueKey(namespace, req.leaseName), done.signal)) yield a;
      } finally {
        ended.close();
        done.close();
      }
      if (shutdown.aborted) throw shuttingDown();
    },

    dial: (req, ctx) => rpc(async () => {
      const { namespace, name } = me(ctx, "Client");
      if (shutdown.aborted) throw shuttingDown();
      const lease = state.getLease(namespace, req.leaseName, name);
      if (lease.ended) {
        const ready = lease.conditions.find((c) => c.type === "Ready" && c.status === "False");
        throw new ConnectError(`lease ${lease.name} has ended${ready?.message ? ` (${ready.reason}: ${ready.message})` : ""}`, Code.FailedPrecondition);
      }
      if (!lease.exporter) {
        const pending = lease.conditions.find((c) => c.type === "Pending");
        throw new ConnectError(`lease ${lease.name} is not ready yet${pending ? ` (${pending.reason}: ${pending.message})` : ""}`, Code.FailedPrecondition);
      }
      const exporter = lease.exporter;
      // Say so now, rather than after the whole wait below.
      const refusal = unreachable(state, namespace, exporter, lease.name);
      if (refusal) throw refusal;
      await state.dialed(namespace, lease.name);
      const routers = deps.routers();
      const endpoint = routers[nextRouter++ % routers.length]!;
      const { token } = await deps.routerTokens.issueRouterToken({ namespace, lease: lease.name, streamId: crypto.randomUUID() });
      const assignment = { routerEndpoint: endpoint, routerToken: token };
      const gone = watchFor(watch.exporter, queueKey(namespace, exporter), () => !state.isConnected(namespace, exporter));
      const ended = watchFor(watch.leaseEnded, queueKey(namespace, lease.name));
      const stop = anyOf([ctx.signal, shutdown, gone.signal, ended.signal]);
      let listened: boolean;
      try {
        listened = await queues.dispatch(queueKey(namespace, lease.name), assignment, DIAL_WAIT_MS, stop.signal);
      } finally {
        for (const w of [gone, ended, stop]) w.close();
      }
      if (listened) return assignment;
      if (shutdown.aborted) throw shuttingDown();
      if (ended.signal.aborted) throw new ConnectError(`lease ${lease.name} has ended`, Code.FailedPrecondition);
      if (gone.signal.aborted) throw unreachable(state, namespace, exporter, lease.name) ?? new ConnectError(`exporter ${exporter} went away`, Code.Unavailable);
      if (ctx.signal.aborted) throw new ConnectError("the client gave up", Code.Canceled);
      throw new ConnectError(`exporter ${exporter} is not listening for lease ${lease.name}`, Code.Unavailable);
    }),

    getLease: (req, ctx) => rpc(() => {
      const { namespace, name } = me(ctx, "Client");
      const l = state.getLease(namespace, req.name, name);
      const exporter = l.exporter ? (() => { try { return state.getExporter(namespace, l.exporter!).uid; } catch { return undefined; } })() : undefined;
      return {
        duration: durationFromMs(l.duration ?? 0),
        selector: toLabelSelector(parseSelector(l.selector)),
        beginTime: l.effectiveBeginTime !== undefined ? timestampFromMs(l.effectiveBeginTime) : undefined,
        endTime: l.effectiveEndTime !== undefined ? timestampFromMs(l.effectiveEndTime) : undefined,
        exporterUuid: exporter,
        conditions: l.conditions.map((c) => create(ConditionSchema, {
          type: c.type, status: c.status, reason: c.reason, message: c.message,
          lastTransitionTime: create(TimeSchema, { seconds: BigInt(Math.floor(c.lastTransitionTime / 1000)), nanos: 0 }),
        })),
      };
    }),

    requestLease: (req, ctx) => rpc(async () => {
      const { namespace, name } = me(ctx, "Client");
      const selector = req.selector ? formatSelector(fromLabelSelector(req.selector)) : undefined;
      const lease = await state.createLease(namespace, name, { selector, duration: req.duration ? durationMs(req.duration) : undefined });
      return { name: lease.name };
    }),

    releaseLease: (req, ctx) => rpc(async () => {
      const id = identityOf(ctx);
      if (id.kind === "Exporter") {
        const lease = state.getLease(id.namespace, req.name);
        if (lease.exporter !== id.name) throw new ConnectError(`lease ${req.name} is not held by exporter ${id.name}`, Code.PermissionDenied);
        await state.releaseExporterLease(id.namespace, id.name);
      } else {
        await state.releaseLease(id.namespace, req.name, id.name);
      }
      return {};
    }),

    listLeases: (_req, ctx) => rpc(() => {
      const { namespace, name } = me(ctx, "Client");
      return { names: state.listLeases(namespace, { client: name, onlyActive: true }).map((l) => l.name) };
    }),

    // No telemetry endpoint: an empty list tells upstream exporters there is none.
    getServiceEndpoints: () => ({ telemetryEndpoints: [] }),
  };
}
