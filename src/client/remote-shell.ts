/**
 * `jmp shell` against a controller: lease (or reuse a lease), wait until it is
 * ready while saying why it waits, tunnel to the exporter through the router, run
 * the shell, then end the session and release the lease this command created.
 */
import type { ClientConfig } from "../common/client-config.ts";
import { UserError } from "../common/errors.ts";
import type { ClientRegistry } from "../driver/registry.ts";
import type { ControllerClients } from "./controller-client.ts";
import { LeaseApi } from "./leases.ts";
import { createOrReuseLease, type LeasedSession, openLeasedSession } from "./leased-session.ts";
import { Progress } from "./progress.ts";
import { runShell } from "./shell.ts";

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

export async function runRemoteShell(opts: RemoteShellOptions): Promise<number> {
  const api = new LeaseApi(opts.controller);
  const progress = new Progress();
  let { lease, created } = await createOrReuseLease(api, opts);
  const releaseQueued = async () => {
    if (!created) return;
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
    await releaseQueued();
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

  let leased: LeasedSession;
  try {
    leased = await openLeasedSession(opts.controller, opts.config, opts.registry, lease, created, (why) => progress.update(why));
  } catch (e) {
    await releaseQueued();
    throw e;
  }
  progress.clear();
  try {
    const exporter = lease.exporter ?? opts.exporterName ?? "";
    let labels = "";
    try {
      const e = await opts.controller.clients.getExporter({ name: `namespaces/${opts.controller.address.namespace}/exporters/${exporter}` });
      labels = Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",");
    } catch {
      // Labels are a convenience for the shell; the lease works without them.
    }
    if (leased.session.report.motd && opts.command.length === 0) console.error(leased.session.report.motd.trimEnd());
    const env: Record<string, string> = {
      JMP_LEASE: lease.name,
      JMP_EXPORTER: exporter,
      JMP_EXPORTER_LABELS: labels,
      JMP_DRIVERS_ALLOW: leased.allow.unsafe ? "UNSAFE" : opts.config.drivers.allow.join(","),
    };
    const ended = watchLease(api, lease.name);
    const code = await runShell({
      host: leased.tunnel.socketPath, command: opts.command, env, name: exporter,
      onStart: (child) => ended.onEnd((why) => {
        console.error(`\n${why}; closing the shell`);
        child.kill("SIGHUP");
      }),
    });
    ended.stop();
    return code;
  } finally {
    await leased.close();
    if (created) progress.done(`released lease ${lease.name}`);
  }
}

/** Polls the lease and reports once when it ends under the shell. */
function watchLease(api: LeaseApi, name: string) {
  let handler: ((why: string) => void) | undefined;
  let stopped = false;
  void (async () => {
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
  return {
    onEnd: (h: (why: string) => void) => (handler = h),
    stop: () => (stopped = true),
  };
}
