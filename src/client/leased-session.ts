/**
 * A session on a leased exporter: create (or reuse) a lease, wait until it is
 * Ready, open a tunnel through the router and wait for the exporter's session to
 * be ready. Shared by `jmp shell` and the `lease()` library call.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClientConfig } from "../common/client-config.ts";
import { UserError } from "../common/errors.ts";
import { getLogger } from "../common/log.ts";
import { AllowList, type ClientRegistry } from "../driver/registry.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { type ControllerClients, explain } from "./controller-client.ts";
import { LeaseApi, type LeaseView } from "./leases.ts";
import { type ConnectedSession, connectSession } from "./session-client.ts";
import { openTunnel, type Tunnel } from "./tunnel.ts";

const log = getLogger("client");

export interface LeaseTarget {
  selector?: string;
  exporterName?: string;
  /** Reuse this lease instead of creating one. */
  leaseName?: string;
  durationMs: number;
}

export interface LeasedSession {
  lease: LeaseView;
  /** True when this call created the lease (and so should release it). */
  created: boolean;
  tunnel: Tunnel;
  session: ConnectedSession;
  allow: AllowList;
  /** Ends the exporter session, closes the tunnel and releases a lease we created; safe to call twice. */
  close(): Promise<void>;
}

export async function createOrReuseLease(api: LeaseApi, target: LeaseTarget): Promise<{ lease: LeaseView; created: boolean }> {
  if (target.leaseName) return { lease: await api.get(target.leaseName), created: false };
  if (!target.selector && !target.exporterName) {
    throw new UserError("give a selector (-l board=rpi4), an exporter (-n NAME) or a lease (--lease NAME)", 2);
  }
  return { lease: await api.create({ selector: target.selector, exporterName: target.exporterName, durationMs: target.durationMs }), created: true };
}

/** From a Ready lease to a ready exporter session through the router. */
export async function openLeasedSession(
  c: ControllerClients,
  config: ClientConfig,
  registry: ClientRegistry,
  lease: LeaseView,
  created: boolean,
  onWait?: (why: string) => void,
): Promise<LeasedSession> {
  const api = new LeaseApi(c);
  // The controller's answer to the last Dial: why the exporter cannot be reached.
  let dialError: ConnectError | undefined;
  const tunnel = await openTunnel({
    dial: async (signal) => {
      try {
        const r = await c.controller.dial({ leaseName: lease.name }, { signal });
        dialError = undefined;
        return { endpoint: r.routerEndpoint, token: r.routerToken };
      } catch (e) {
        if (e instanceof ConnectError) dialError = e;
        throw explain(e, c.address.endpoint);
      }
    },
    tls: config.tls,
    onError: (e) => log.debug(`a tunnelled connection failed: ${e.message}`),
  });
  const allow = new AllowList(config.drivers.allow, config.drivers.unsafe);
  let session: ConnectedSession;
  try {
    session = await waitForSession(tunnel.socketPath, registry, allow, config.leases.dial_timeout * 1000, () => dialError, onWait);
  } catch (e) {
    await tunnel.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    lease, created, tunnel, session, allow,
    close: () => (closing ??= (async () => {
      try {
        await session.portal.exporter.endSession({}, { timeoutMs: 5000 });
      } catch {
        // The exporter may already have let go (the lease ended); nothing to end then.
      }
      session.close();
      await tunnel.close();
      if (created) await api.release(lease.name).catch((e: Error) => log.warn(`could not release lease ${lease.name}: ${e.message}`));
    })()),
  };
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
  lastDial: () => ConnectError | undefined,
  onWait?: (why: string) => void,
): Promise<ConnectedSession> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    try {
      const session = await connectSession({ host: socket }, registry, allow);
      const status = await session.portal.getStatus();
      if (status.status === ExporterStatus.LEASE_READY) return session;
      session.close();
      lastError = `the exporter is ${ExporterStatus[status.status]}`;
    } catch (e) {
      const dial = lastDial();
      if (dial && FINAL.has(dial.code)) throw new UserError(dial.rawMessage, 1);
      lastError = dial?.rawMessage ?? (e as Error).message;
    }
    onWait?.(`waiting for the exporter: ${lastError}`);
    if (Date.now() > deadline) throw new UserError(`the exporter did not become ready within ${Math.round(timeoutMs / 1000)} s: ${lastError}`, 1);
    await Bun.sleep(300);
  }
}
