/**
 * `jmp shell` against a controller: lease (or reuse a lease), wait until it is
 * ready while saying why it waits, tunnel to the exporter through the router, run
 * the shell, then end the session and release the lease this command created.
 * Ctrl-C, SIGTERM or a closed terminal (SIGHUP) while waiting gives the lease back.
 * While the shell runs, the lease is extended before it ends (`--auto-extend`) or
 * warned about 5 and 1 minute before; when it ends the shell gets SIGHUP.
 */
import type { ClientConfig } from "../common/client-config.ts";
import type { ClientRegistry } from "../driver/registry.ts";
import type { ControllerConnection } from "./controller.ts";
import type { LeaseTarget } from "./lease-options.ts";
import type { LeaseHold } from "./lease-hold.ts";
import { acquireSession, type LeaseLife, type LeasedSession } from "./leased-session.ts";
import { endingLine } from "./lease-watch.ts";
import { Progress } from "./progress.ts";
import { runShell } from "./shell.ts";
import { constants } from "node:os";

export interface RemoteShellOptions {
  controller: ControllerConnection;
  config: ClientConfig;
  registry: ClientRegistry;
  target: LeaseTarget;
  command: string[];
  /** Show the exporter's driver logs too, not only its hooks' output. */
  exporterLogs?: boolean;
  /** Extend the lease while the shell runs (`--auto-extend`). */
  autoExtend?: boolean;
}

/** A line on stderr while the child has the terminal: on a line of its own, whatever the child last wrote. */
function say(line: string): void {
  process.stderr.write(`${process.stderr.isTTY ? "\r\n" : ""}${line}\n`);
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export async function runRemoteShell(opts: RemoteShellOptions): Promise<number> {
  const progress = new Progress();
  const waiting = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy = signal;
    waiting.abort(new Error(`interrupted (${signal})`));
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  // The lease's life while the shell runs; its end closes the shell (at once, if it comes before the shell starts).
  let child: { kill(signal: NodeJS.Signals): void } | undefined;
  let leaseEnded = false;
  let stepMs = opts.target.durationMs;
  const life: LeaseLife = {
    autoExtend: opts.autoExtend,
    onEnding: (remainingMs, lease) => say(`Warning: ${endingLine(lease, remainingMs, stepMs)}`),
    onNotice: (line) => say(`Warning: ${line}`),
    onEnd: (why) => {
      leaseEnded = true;
      say(`${why}; closing the shell`);
      child?.kill("SIGHUP");
    },
  };
  let leased: LeasedSession;
  let hold: LeaseHold | undefined;
  try {
    leased = await acquireSession(opts.controller, opts.config, opts.registry, opts.target, {
      signal: waiting.signal,
      onLease: (h) => (hold = h),
      onWait: (why) => progress.update(why),
      onReady: (lease) => {
        stepMs = lease.durationMs ?? stepMs;
        progress.done(`lease ${lease.name}: ready on exporter ${lease.exporter}`);
      },
      // The exporter's hooks, live: while we wait for the beforeLease one, and after the shell for afterLease.
      onHookOutput: (line) => progress.note(line),
      allExporterLogs: opts.exporterLogs,
      life,
    });
  } catch (e) {
    if (!stoppedBy) {
      progress.clear();
      throw e;
    }
    // acquireSession gave the lease back already; asking again tells whether it did.
    progress.done(hold && (await hold.release()) ? `interrupted; released lease ${hold.name}` : "interrupted");
    return 128 + constants.signals[stoppedBy];
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
  progress.clear();

  let code = 1;
  try {
    const { lease } = leased;
    const exporter = lease.exporter ?? opts.target.exporterName ?? "";
    if (leased.warning) console.error(`Warning: ${leased.warning}`);
    if (opts.command.length === 0) {
      // Asked again now: a beforeLease hook may have added to it (JMP_MOTD_FILE).
      const motd = await leased.session.portal.getReport().then((r) => r.motd, () => leased.session.report.motd);
      if (motd) console.error(motd.trimEnd());
    }
    const env: Record<string, string> = {
      JMP_LEASE: lease.name,
      JMP_EXPORTER: exporter,
      JMP_EXPORTER_LABELS: Object.entries(leased.labels).map(([k, v]) => `${k}=${v}`).join(","),
      JMP_DRIVERS_ALLOW: leased.allow.unsafe ? "UNSAFE" : opts.config.drivers.allow.join(","),
    };
    code = await runShell({
      host: leased.tunnel.socketPath, command: opts.command, env, name: exporter,
      onStart: (c) => {
        child = c;
        if (leaseEnded) c.kill("SIGHUP");
      },
    });
  } finally {
    const ended = await leased.close();
    if (ended?.ok === false) {
      // Cleanup after the lease did not complete: worth a failed exit, as in local mode.
      console.error(`Error: exporter ${leased.lease.exporter}: ${ended.message}`);
      if (code === 0) code = 1;
    } else if (ended?.warning) {
      console.error(`Warning: ${ended.warning}`);
    }
    if (await leased.hold.release()) progress.done(`released lease ${leased.lease.name}`);
  }
  return code;
}
