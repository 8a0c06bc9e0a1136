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
import type { LeaseTarget } from "./lease-options.ts";
import type { LeaseView } from "./leases.ts";
import { type ConnectedSession, connectSession } from "./session-client.ts";
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
  /** Ends the exporter session, closes the tunnel and releases a lease we created; safe to call twice. */
  close(): Promise<void>;
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
}

/** From a target to a ready exporter session; nothing is left held when it fails. */
export async function acquireSession(
  connection: ControllerConnection,
  config: ClientConfig,
  registry: ClientRegistry,
  target: LeaseTarget,
  opts: AcquireOptions = {},
): Promise<LeasedSession> {
  const hold = await LeaseHold.take(connection, target);
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
  opts: { signal?: AbortSignal; onWait?: (why: string) => void } = {},
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
  let session: ConnectedSession;
  try {
    session = await waitForSession(tunnel.socketPath, registry, allow, config.leases.dial_timeout * 1000, () => dialError, opts);
  } catch (e) {
    await tunnel.close();
    throw e;
  }
  established = true;
  hold.watch((why) => log.debug(why));
  const labels = lease.exporter ? await exporterLabels(connection, lease.exporter) : {};
  let closing: Promise<void> | undefined;
  return {
    lease, hold, tunnel, session, allow, labels,
    close: () => (closing ??= (async () => {
      try {
        await session.portal.exporter.endSession({}, { timeoutMs: 5000 });
      } catch {
        // The exporter may already have let go (the lease ended); nothing to end then.
      }
      session.close();
      await tunnel.close();
      await hold.release();
    })()),
  };
}

async function exporterLabels(c: ControllerConnection, exporter: string): Promise<Record<string, string>> {
  try {
    return (await c.clients.getExporter({ name: `namespaces/${c.address.namespace}/exporters/${exporter}` })).labels;
  } catch {
    return {};
  }
}

/** Dial answers that waiting cannot fix. */
const FINAL = new Set([Code.NotFound, Code.FailedPrecondition, Code.PermissionDenied, Code.Unauthenticated]);

/**
 * Connects through the tunnel and waits until the exporter reports LEASE_READY,
 * saying why it waits (the controller's Dial answer, e.g. "exporter pi-1 is offline").
 */
async function waitForSession(
  socket: string,
  registry: ClientRegistry,
  allow: AllowList,
  timeoutMs: number,
  lastDial: () => PeerError | undefined,
  opts: { signal?: AbortSignal; onWait?: (why: string) => void },
): Promise<ConnectedSession> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const session = await connectSession({ host: socket }, registry, allow);
      const status = await session.portal.getStatus();
      if (status.status === ExporterStatus.LEASE_READY) return session;
      session.close();
      lastError = `the exporter is ${ExporterStatus[status.status]}`;
    } catch (e) {
      const dial = lastDial();
      if (dial && FINAL.has(dial.code)) throw dial;
      lastError = dial?.message ?? (e as Error).message;
    }
    opts.onWait?.(`waiting for the exporter: ${lastError}`);
    if (Date.now() > deadline) throw new UserError(`the exporter did not become ready within ${Math.round(timeoutMs / 1000)} s: ${lastError}`, 1);
    await new Promise((r) => setTimeout(r, 300));
  }
}
