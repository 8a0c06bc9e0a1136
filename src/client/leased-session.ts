/**
 * A session on a leased exporter: take the lease (create or reuse), wait until it
 * is Ready, open a tunnel through the router and wait for the exporter's session
 * to be ready. `jmp shell` and the library's `lease()` both come through here, so
 * they wait, report and give leases back the same way.
 */
import type { ClientConfig } from "../common/client-config.ts";
import { UserError } from "../common/errors.ts";
import { getLogger } from "../common/log.ts";
import { Backoff, sleep } from "../common/backoff.ts";
import { AllowList, type ClientRegistry } from "../driver/registry.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { Code } from "@connectrpc/connect";
import type { ControllerConnection } from "./controller.ts";
import { isTransient, PeerError } from "./errors.ts";
import { LeaseHold } from "./lease-hold.ts";
import type { LeaseLifeOptions } from "./lease-watch.ts";
import type { LeaseTarget } from "./lease-options.ts";
import type { LeaseView } from "./leases.ts";
import { type ConnectedSession, connectSession } from "./session-client.ts";
import { endSession, followExporterLogs, LeaseHookFailedError, readiness, type SessionEnd, statusPolls, type StopFollowing } from "./exporter-status.ts";
import { openTunnel, type Tunnel } from "./tunnel.ts";

const log = getLogger("client");

export interface LeasedSession {
  lease: LeaseView;
  hold: LeaseHold;
  tunnel: Tunnel;
  session: ConnectedSession;
  allow: AllowList;
  /** The exporter's labels (empty when they could not be read: they are a convenience). */
  labels: Record<string, string>;
  /** The beforeLease hook failed under `onFailure: warn`: what it said. */
  warning?: string;
  /**
   * Ends the exporter session (EndSession, for a lease we created, as upstream: its
   * afterLease hook runs and we wait for it), closes the tunnel and releases a lease
   * we created; safe to call twice. Resolves to how the afterLease hook ended.
   */
  close(): Promise<SessionEnd | undefined>;
}

export interface AcquireOptions {
  /** How long to wait for the lease to be ready (default: the client config's acquisition timeout). */
  timeoutMs?: number;
  /** Aborting it while waiting gives a lease we created back, then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** A line saying what we wait for, whenever that changes. */
  onWait?: (why: string) => void;
  /** Once the lease exists (before it is ready): its name, e.g. for a watchdog. */
  onLease?: (hold: LeaseHold) => void;
  /** Once it is ready, before the session is opened. */
  onReady?: (lease: LeaseView) => void;
  /** Each line the exporter's hooks print (their output, live), from the first connection to the end. */
  onHookOutput?: (line: string) => void;
  /** Pass on the exporter's other log lines too (its drivers'), as `jmp shell --exporter-logs`. */
  allExporterLogs?: boolean;
  /** While the session is up: auto-extend, the warnings before the lease ends, and what to do when it ends (default: a debug line). */
  life?: LeaseLife;
}

export interface LeaseLife extends LeaseLifeOptions {
  onEnd?: (why: string) => void;
}

/** From a target to a ready exporter session; nothing is left held when it fails. */
export async function acquireSession(
  connection: ControllerConnection,
  config: ClientConfig,
  registry: ClientRegistry,
  target: LeaseTarget,
  opts: AcquireOptions = {},
): Promise<LeasedSession> {
  const hold = await LeaseHold.take(connection, target, { signal: opts.signal, onWait: opts.onWait });
  try {
    opts.onLease?.(hold);
    const lease = await hold.waitReady({ timeoutMs: opts.timeoutMs ?? config.leases.acquisition_timeout * 1000, signal: opts.signal, onWait: opts.onWait });
    opts.onReady?.(lease);
    return await openLeasedSession(connection, config, registry, hold, opts);
  } catch (e) {
    await hold.release();
    throw e;
  }
}

/** From a Ready lease to a ready exporter session through the router. */
export async function openLeasedSession(
  connection: ControllerConnection,
  config: ClientConfig,
  registry: ClientRegistry,
  hold: LeaseHold,
  opts: { signal?: AbortSignal; onWait?: (why: string) => void; onHookOutput?: (line: string) => void; allExporterLogs?: boolean; life?: LeaseLife } = {},
): Promise<LeasedSession> {
  const lease = hold.view;
  // The controller's answer to the last Dial: why the exporter cannot be reached.
  let dialError: PeerError | undefined;
  // Until the session is up, waitForSession tries again and says why it waits. Once
  // it is, each new connection (a `j` in the shell) waits through a controller
  // restart or an exporter reconnecting, as the shell's lease does.
  let established = false;
  const tunnel = await openTunnel({
    dial: async (signal) => {
      const deadline = Date.now() + config.leases.dial_timeout * 1000;
      const backoff = new Backoff({ initialMs: 250, maxMs: 2_000 });
      for (;;) {
        try {
          const r = await connection.controller.dial({ leaseName: lease.name }, { signal });
          dialError = undefined;
          return { endpoint: r.routerEndpoint, token: r.routerToken };
        } catch (e) {
          if (e instanceof PeerError) dialError = e;
          const delay = backoff.next();
          if (!established || !isTransient(e) || Date.now() + delay > deadline) throw e;
          log.debug(`dial for lease ${lease.name}: ${(e as Error).message}; trying again`);
          if (!(await sleep(delay, signal))) throw e;
        }
      }
    },
    tls: config.tls,
    onError: (e) => log.debug(`a tunnelled connection failed: ${e.message}`),
  });
  const allow = new AllowList(config.drivers.allow, config.drivers.unsafe);
  let ready: ReadySession;
  try {
    ready = await waitForSession(tunnel.socketPath, registry, allow, config.leases.dial_timeout * 1000, () => dialError, {
      ...opts, exporter: lease.exporter ?? "",
    });
  } catch (e) {
    await tunnel.close();
    throw e;
  }
  const { session, stopLogs, warning } = ready;
  established = true;
  hold.watch({ ...opts.life, onEnd: opts.life?.onEnd ?? ((why) => log.debug(why)) });
  const labels = lease.exporter ? await exporterLabels(connection, lease.exporter) : {};
  let closing: Promise<SessionEnd | undefined> | undefined;
  return {
    lease, hold, tunnel, session, allow, labels, warning,
    close: () => (closing ??= (async () => {
      // Only for a lease we created, as upstream: a lease used again later
      // (`--lease`) keeps its session, and its hooks run when it ends.
      const ended = hold.created ? await endSession(session.portal, AFTER_LEASE_WAIT_MS) : undefined;
      await stopLogs(LOG_SETTLE_MS);
      session.close();
      await tunnel.close();
      await hold.release();
      return ended;
    })()),
  };
}

/** How long a client waits for the exporter's afterLease hook after EndSession. */
const AFTER_LEASE_WAIT_MS = 10 * 60_000;
/** At most this long for a hook's last lines to arrive once its status says it has ended. */
const LOG_SETTLE_MS = 1000;

async function exporterLabels(c: ControllerConnection, exporter: string): Promise<Record<string, string>> {
  try {
    return (await c.clients.getExporter({ name: `namespaces/${c.address.namespace}/exporters/${exporter}` })).labels;
  } catch {
    return {};
  }
}

/** Dial answers that waiting cannot fix. */
const FINAL = new Set([Code.NotFound, Code.FailedPrecondition, Code.PermissionDenied, Code.Unauthenticated]);

interface ReadySession {
  session: ConnectedSession;
  /** Stops passing on the hooks' output. */
  stopLogs: StopFollowing;
  warning?: string;
}

/**
 * Connects through the tunnel and waits until the exporter reports LEASE_READY,
 * saying why it waits (the controller's Dial answer, e.g. "exporter pi-1 is
 * offline", or a beforeLease hook running, whose output comes meanwhile). One
 * connection, asked soon and then every 0.3 s as upstream's client does; a new one only when it
 * fails. While a hook runs the exporter is getting somewhere: no time limit then
 * (the hook has its own, and the lease its end).
 */
async function waitForSession(
  socket: string,
  registry: ClientRegistry,
  allow: AllowList,
  timeoutMs: number,
  lastDial: () => PeerError | undefined,
  opts: { signal?: AbortSignal; onWait?: (why: string) => void; onHookOutput?: (line: string) => void; allExporterLogs?: boolean; exporter: string },
): Promise<ReadySession> {
  let deadline = Date.now() + timeoutMs;
  let lastError = "";
  const pause = statusPolls();
  let session: ConnectedSession | undefined;
  let stopLogs: StopFollowing = async () => {};
  const drop = async (settleMs = 0) => {
    await stopLogs(settleMs);
    session?.close();
    session = undefined;
  };
  for (;;) {
    try {
      opts.signal?.throwIfAborted();
    } catch (e) {
      await drop();
      throw e;
    }
    try {
      if (!session) {
        session = await connectSession({ host: socket }, registry, allow);
        if (opts.onHookOutput) stopLogs = followExporterLogs(session.portal, opts.onHookOutput, { all: opts.allExporterLogs });
      }
      const status = await session.portal.getStatus();
      const step = readiness(status, opts.exporter);
      if (step.ready) return { session, stopLogs, warning: step.warning };
      lastError = step.why;
      if (status.status === ExporterStatus.BEFORE_LEASE_HOOK) deadline = Date.now() + timeoutMs;
    } catch (e) {
      if (e instanceof LeaseHookFailedError) {
        // The hook's last lines, which say why, are likely still on their way.
        await drop(LOG_SETTLE_MS);
        throw e;
      }
      await drop();
      const dial = lastDial();
      if (dial && FINAL.has(dial.code)) throw dial;
      lastError = dial?.message ?? (e as Error).message;
    }
    opts.onWait?.(`waiting for the exporter: ${lastError}`);
    if (Date.now() > deadline) {
      await drop();
      throw new UserError(`the exporter did not become ready within ${Math.round(timeoutMs / 1000)} s: ${lastError}`, 1);
    }
    await pause();
  }
}
