/**
 * `jmp shell` against a controller: lease (or reuse a lease), wait until it is
 * ready while saying why it waits, tunnel to the exporter through the router, run
 * the shell, then end the session and release the lease this command created.
 */
import type { ClientConfig } from "../common/client-config.ts";
import { UserError } from "../common/errors.ts";
import { getLogger } from "../common/log.ts";
import type { ClientRegistry } from "../driver/registry.ts";
import { AllowList } from "../driver/registry.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import type { ControllerClients } from "./controller-client.ts";
import { explain } from "./controller-client.ts";
import { LeaseApi, type LeaseView } from "./leases.ts";
import { connectSession } from "./session-client.ts";
import { runShell } from "./shell.ts";
import { openTunnel } from "./tunnel.ts";
import { Progress } from "./progress.ts";

export interface RemoteShellOptions {
  controller: ControllerClients;
  config: ClientConfig;
  registry: ClientRegistry;
  selector?: string;
  exporterName?: string;
  /** Reuse this lease instead of creating one. */
  leaseName?: string;
  durationMs: number;
  command: string[];
}

const log = getLogger("shell");

export async function runRemoteShell(opts: RemoteShellOptions): Promise<number> {
  const api = new LeaseApi(opts.controller);
  const progress = new Progress();
  let lease: LeaseView;
  let created = false;
  if (opts.leaseName) {
    lease = await api.get(opts.leaseName);
  } else {
    if (!opts.selector && !opts.exporterName) throw new UserError("give a selector (-l board=rpi4), an exporter (-n NAME) or a lease (--lease NAME)", 2);
    lease = await api.create({ selector: opts.selector, exporterName: opts.exporterName, durationMs: opts.durationMs });
    created = true;
  }
  const release = async () => {
    if (!created) return;
    created = false;
    try {
      await api.release(lease.name);
      progress.done(`released lease ${lease.name}`);
    } catch (e) {
      progress.done(`could not release lease ${lease.name}: ${(e as Error).message}`);
    }
  };

  // Ctrl-C while waiting gives the lease back instead of leaving it queued.
  const waiting = new AbortController();
  const onInterrupt = () => waiting.abort();
  process.on("SIGINT", onInterrupt);
  process.on("SIGTERM", onInterrupt);
  try {
    lease = await api.waitReady(lease.name, {
      timeoutMs: opts.config.leases.acquisition_timeout * 1000,
      signal: waiting.signal,
      onWait: (v) => progress.update(`lease ${v.name}: waiting${v.reason ? ` (${v.reason}${v.message ? `: ${v.message}` : ""})` : ""}`),
    });
  } catch (e) {
    await release();
    if (waiting.signal.aborted) {
      progress.done("interrupted");
      return 130;
    }
    throw e instanceof UserError ? e : new UserError((e as Error).message, 1);
  } finally {
    process.off("SIGINT", onInterrupt);
    process.off("SIGTERM", onInterrupt);
  }
  progress.done(`lease ${lease.name}: ready on exporter ${lease.exporter}`);

  const tunnel = await openTunnel({
    dial: async (signal) => {
      try {
        const r = await opts.controller.controller.dial({ leaseName: lease.name }, { signal });
        return { endpoint: r.routerEndpoint, token: r.routerToken };
      } catch (e) {
        throw explain(e, opts.controller.address.endpoint);
      }
    },
    tls: opts.config.tls,
    onError: (e) => log.debug(`a tunnelled connection failed: ${e.message}`),
  });
  let code = 1;
  try {
    const allow = new AllowList(opts.config.drivers.allow, opts.config.drivers.unsafe);
    const session = await waitForSession(tunnel.socketPath, opts.registry, allow, opts.config.leases.dial_timeout * 1000);
    const exporter = opts.exporterName ?? lease.exporter ?? "";
    let labels = "";
    try {
      const e = await opts.controller.clients.getExporter({ name: `namespaces/${opts.controller.address.namespace}/exporters/${exporter}` });
      labels = Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",");
    } catch {
      // Labels are a convenience for the shell; the lease works without them.
    }
    if (session.report.motd && opts.command.length === 0) console.error(session.report.motd.trimEnd());
    const env: Record<string, string> = {
      JMP_LEASE: lease.name,
      JMP_EXPORTER: exporter,
      JMP_EXPORTER_LABELS: labels,
      JMP_DRIVERS_ALLOW: allow.unsafe ? "UNSAFE" : opts.config.drivers.allow.join(","),
    };
    const ended = watchLease(api, lease.name);
    code = await runShell({ host: tunnel.socketPath, command: opts.command, env, name: exporter, onStart: (child) => ended.onEnd((why) => {
      console.error(`\n${why}; closing the shell`);
      child.kill("SIGHUP");
    }) });
    ended.stop();
    try {
      await session.portal.exporter.endSession({}, { timeoutMs: 5000 });
    } catch {
      // The exporter may already have let go (lease ended); nothing to end then.
    }
  } finally {
    await tunnel.close();
    await release();
  }
  return code;
}

/** Connects through the tunnel and waits until the exporter reports LEASE_READY. */
async function waitForSession(socket: string, registry: ClientRegistry, allow: AllowList, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    try {
      const session = await connectSession({ host: socket }, registry, allow);
      const status = await session.portal.getStatus();
      if (status.status === ExporterStatus.LEASE_READY) return session;
      lastError = `the exporter is ${ExporterStatus[status.status]}`;
    } catch (e) {
      lastError = (e as Error).message;
    }
    if (Date.now() > deadline) throw new UserError(`the exporter did not become ready within ${Math.round(timeoutMs / 1000)} s: ${lastError}`, 1);
    await Bun.sleep(300);
  }
}

/** Polls the lease and reports once when it ends under the shell. */
function watchLease(api: LeaseApi, name: string) {
  let handler: ((why: string) => void) | undefined;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await Bun.sleep(2000);
      if (stopped) return;
      try {
        const v = await api.get(name);
        if (v.state !== "Ready") {
          handler?.(`lease ${name} ended${v.reason ? ` (${v.reason})` : ""}`);
          return;
        }
      } catch {
        // A controller blip is not the end of the lease; try again.
      }
    }
  })();
  void loop;
  return {
    onEnd: (h: (why: string) => void) => (handler = h),
    stop: () => (stopped = true),
  };
}
