/**
 * Lease hooks as upstream runs them (its docs/source/introduction/hooks.md):
 * `hooks.beforeLease` runs once a lease is assigned, before its client may call a
 * driver; `hooks.afterLease` once the client's session ends, before the exporter
 * takes another lease. Plus our `hooks.healthCheck` (health.ts), run between leases.
 *
 * Each run gets its own socket of the session's drivers (JUMPSTARTER_HOST), on which
 * `j` may call while the hook runs; its output goes to the exporter's log and,
 * live, to the session's clients (LogStream, source BEFORE/AFTER_LEASE_HOOK).
 * hook-process.ts runs the program itself (a pty, a process group, the timeout).
 *
 * Scripts and interpreters are checked when the exporter starts (resolveHooks), so
 * a missing file is a config error naming the key, not a failed lease an hour later.
 */
import { closeSync, constants, fstatSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ExporterConfig, OnFailure } from "../common/exporter-config.ts";
import { HOOK_WARNING_PREFIX } from "../common/hook-warning.ts";
import { getLogger, type Logger, type LogLevel } from "../common/log.ts";
import { makePrivateDir } from "../common/private-dir.ts";
import { makeJCommandDir } from "../common/self.ts";
import { ExporterStatus, LogSource } from "../gen/jumpstarter/v1/common_pb.ts";
import { type HookName, type ResolvedHook, type ResolvedHooks, resolveHooks } from "./hook-config.ts";
import { runHookProcess } from "./hook-process.ts";
import { serveRoutes } from "./serve.ts";
import type { ExporterSession } from "./session.ts";

/** Upper bound on what a hook may add to the MOTD through JMP_MOTD_FILE, as upstream. */
const MAX_MOTD_BYTES = 64 * 1024;
/** How much of a failed hook's last line its failure message quotes. */
const QUOTED_LINE = 200;

export { type HookName, type ResolvedHook, type ResolvedHooks, resolveHooks } from "./hook-config.ts";

const SOURCE: Record<HookName, LogSource> = {
  beforeLease: LogSource.BEFORE_LEASE_HOOK,
  afterLease: LogSource.AFTER_LEASE_HOOK,
  healthCheck: LogSource.SYSTEM,
};

export interface HookContext {
  leaseName: string;
  clientName: string;
}

/** How one run ended. */
export interface HookRun {
  ok: boolean;
  /** Why it failed: the exit code or signal, a timeout, with its last line of output. */
  why: string;
  onFailure: OnFailure;
  /** The hook's last line of output (health checks show it). */
  lastLine: string;
}

/** What a lease does after a hook: go on (perhaps with a warning), or end as `onFailure` says. */
export type Verdict =
  | { proceed: true; warning?: string }
  | { proceed: false; onFailure: "endLease" | "exit"; message: string };

/** Reports a status beyond the session (to the controller, in distributed mode). */
export type StatusReport = (status: ExporterStatus, message: string) => void;

export class ExporterHooks {
  readonly log: Logger;

  constructor(
    readonly hooks: ResolvedHooks,
    log?: Logger,
  ) {
    this.log = log ?? getLogger("exporter");
  }

  static fromConfig(config: ExporterConfig): ExporterHooks {
    return new ExporterHooks(resolveHooks(config));
  }

  has(name: HookName): boolean {
    return this.hooks[name] !== undefined;
  }

  /** A lease hook is configured: leases end with the exporter releasing them, as upstream. */
  get leaseHooks(): boolean {
    return this.has("beforeLease") || this.has("afterLease");
  }

  /**
   * The beforeLease hook, with the statuses upstream reports around it. The session
   * is BEFORE_LEASE_HOOK while it runs (clients wait), then LEASE_READY, with a
   * warning under `onFailure: warn`, or BEFORE_LEASE_HOOK_FAILED.
   */
  async beforeLease(session: ExporterSession, ctx: HookContext, report: StatusReport, signal?: AbortSignal): Promise<Verdict> {
    const set = (status: ExporterStatus, message: string) => {
      session.setStatus(status, message);
      report(status, message);
    };
    if (!this.has("beforeLease")) {
      set(ExporterStatus.LEASE_READY, "Ready for commands");
      return { proceed: true };
    }
    set(ExporterStatus.BEFORE_LEASE_HOOK, "Running beforeLease hook");
    const run = await this.run("beforeLease", session, ctx, signal);
    if (run.ok) {
      set(ExporterStatus.LEASE_READY, "Ready for commands");
      return { proceed: true };
    }
    if (run.onFailure === "warn") {
      const warning = `beforeLease hook warning: ${run.why}`;
      set(ExporterStatus.LEASE_READY, `${HOOK_WARNING_PREFIX}${warning}`);
      return { proceed: true, warning };
    }
    const message = `beforeLease hook failed (onFailure: ${run.onFailure}): ${run.why}`;
    set(ExporterStatus.BEFORE_LEASE_HOOK_FAILED, message);
    return { proceed: false, onFailure: run.onFailure, message };
  }

  /**
   * The afterLease hook: AFTER_LEASE_HOOK while it runs, then AFTER_LEASE_HOOK_FAILED
   * or (in the session only: the caller says when the exporter is available again)
   * AVAILABLE, with a warning under `onFailure: warn`.
   */
  async afterLease(session: ExporterSession, ctx: HookContext, report: StatusReport, signal?: AbortSignal): Promise<Verdict> {
    if (!this.has("afterLease")) {
      session.setStatus(ExporterStatus.AVAILABLE, "Available for new lease");
      return { proceed: true };
    }
    session.setStatus(ExporterStatus.AFTER_LEASE_HOOK, "Running afterLease hook");
    report(ExporterStatus.AFTER_LEASE_HOOK, "Running afterLease hook");
    const run = await this.run("afterLease", session, ctx, signal);
    if (run.ok) {
      session.setStatus(ExporterStatus.AVAILABLE, "Available for new lease");
      return { proceed: true };
    }
    if (run.onFailure === "warn") {
      const warning = `afterLease hook warning: ${run.why}`;
      session.setStatus(ExporterStatus.AVAILABLE, `${HOOK_WARNING_PREFIX}${warning}`);
      return { proceed: true, warning };
    }
    const message = `afterLease hook failed (onFailure: ${run.onFailure}): ${run.why}`;
    session.setStatus(ExporterStatus.AFTER_LEASE_HOOK_FAILED, message);
    report(ExporterStatus.AFTER_LEASE_HOOK_FAILED, message);
    return { proceed: false, onFailure: run.onFailure, message };
  }

  /**
   * Runs one hook against `session`'s drivers: a socket of its own for `j`, the
   * environment upstream gives (plus `j` on the PATH), its output logged and sent
   * to the session's clients. Never throws: a hook that cannot start has failed.
   */
  async run(name: HookName, session: ExporterSession, ctx: HookContext, signal?: AbortSignal): Promise<HookRun> {
    const hook = this.hooks[name]!;
    const log = this.log;
    const source = SOURCE[name];
    const dir = makePrivateDir("jmp-hook-");
    const jDir = makeJCommandDir();
    const motdFile = join(dir, "motd");
    let lastLine = "";
    let why: string | undefined;
    const say = (level: LogLevel, line: string, from = source) => {
      log[level](`${name}: ${line}`);
      session.systemLog(level, line, from);
    };
    try {
      const served = await serveRoutes(session.hookRoutes(), { unix: join(dir, "session.sock") });
      try {
        if (name === "beforeLease") writeFileSync(motdFile, "", { mode: 0o600 });
        const env = hookEnvironment(process.env, {
          JUMPSTARTER_HOST: served.address,
          LEASE_NAME: ctx.leaseName,
          CLIENT_NAME: ctx.clientName,
          PATH: `${jDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
          ...(name === "beforeLease" ? { JMP_MOTD_FILE: motdFile } : {}),
        });
        const timeoutS = hook.config.timeout;
        const result = await runHookProcess({
          argv: hook.argv,
          env,
          timeoutMs: timeoutS * 1000,
          signal,
          onLine: (line) => {
            lastLine = line;
            say("info", line);
          },
        });
        if (result.leftovers) log.info(`${name}: ended the processes the hook left running in its process group`);
        if (result.timedOut) why = `timed out after ${timeoutS} s (its process group was ended)`;
        else if (result.aborted) why = "stopped: the exporter is shutting down";
        else if (result.signal) why = `killed by ${result.signal}`;
        else if (result.code !== 0) why = `exit code ${result.code}`;
        log.debug(`${name}: ${why ?? "succeeded"} in ${Math.round(result.durationMs)} ms`);
        if (name === "beforeLease") {
          const motd = readMotd(motdFile, log);
          if (motd) session.appendMotd(motd);
        }
      } finally {
        await served.close({ message: `the ${name} hook has ended`, graceMs: 0 });
      }
    } catch (e) {
      why = (e as Error).message;
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(jDir, { recursive: true, force: true });
    }
    if (why === undefined) return { ok: true, why: "", onFailure: hook.config.onFailure, lastLine };
    if (lastLine) why += `; last output: "${lastLine.length > QUOTED_LINE ? `${lastLine.slice(0, QUOTED_LINE)}…` : lastLine}"`;
    // From the exporter, not the hook: clients say it once, from the status that follows.
    say(hook.config.onFailure === "warn" ? "warn" : "error", `${name} hook failed: ${why} (onFailure: ${hook.config.onFailure})`, LogSource.SYSTEM);
    return { ok: false, why, onFailure: hook.config.onFailure, lastLine };
  }
}

/**
 * Upstream's hook environment: ours, plus the session to use, and the variables
 * that tell programs nobody is at the terminal (hooks run in a pty only so that
 * their output comes line by line). Settings for reaching a remote session are
 * dropped: the hook's socket is local.
 */
export function hookEnvironment(base: NodeJS.ProcessEnv, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  for (const k of ["PS1", "JMP_MOTD_FILE", "JMP_GRPC_PASSPHRASE", "JMP_GRPC_INSECURE", "JUMPSTARTER_GRPC_INSECURE", "JMP_TLS_CA", "JMP_LEASE"]) {
    delete env[k];
  }
  return {
    ...env,
    JMP_DRIVERS_ALLOW: "UNSAFE",
    _JMP_SUPPRESS_DRIVER_WARNINGS: "1",
    TERM: "dumb",
    DEBIAN_FRONTEND: "noninteractive",
    GIT_TERMINAL_PROMPT: "0",
    ...extra,
  };
}

/** What the hook wrote to JMP_MOTD_FILE: a regular file only (not a FIFO it swapped in), at most 64 KiB. */
function readMotd(file: string, log: Logger): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return "";
  }
  try {
    if (!fstatSync(fd).isFile()) {
      log.warn(`beforeLease: JMP_MOTD_FILE was replaced by something that is not a file; ignored`);
      return "";
    }
    const buf = Buffer.alloc(MAX_MOTD_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("utf8").trim();
  } catch (e) {
    log.warn(`beforeLease: cannot read JMP_MOTD_FILE: ${(e as Error).message}`);
    return "";
  } finally {
    closeSync(fd);
  }
}
