/**
 * Upstream's restart loop for `jmp run`: the service process keeps one worker (this
 * program again, same arguments) and starts a new one whenever it exits cleanly. A
 * worker that exits cleanly sooner than `rapidFailureWindow` seconds after it started
 * counts as a rapid failure; after `maxRapidFailures` of them in a row the supervisor
 * exits 1, so that systemd's `Restart=` takes over with its own delay instead of a
 * tight loop against, say, a DNS name that does not resolve.
 *
 * Any other worker exit ends the supervisor with the same code (a config error stays
 * 2, a stop by SIGTERM stays 143). Signals are passed to the worker's process group:
 * SIGHUP lets the current lease finish, then the supervisor exits 129 as upstream's.
 *
 * A worker says it has started (enterWorker) on a pipe the supervisor gives it. One
 * that fails before that never ran our code, so nothing has explained the failure
 * (127 from an exec that failed, a crash at load): the supervisor says what it ran,
 * how that ended and what to check, and exits 1.
 *
 * The supervisor reads no config (our shape, not upstream's): it stays up all day,
 * and loading the config would keep the YAML parser, the JIT's work on it and the
 * exporter's modules in its memory (58 → 40 MiB RSS; bench/README.md). The worker
 * reads it, ends with code 2 on a mistake, and tells the supervisor on the same pipe,
 * once it has checked the config, the restart policy written there
 * (failureDetection, exitOnLeaseEnd): one JSON line after "started".
 */
import { spawn } from "node:child_process";
import { closeSync, writeSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { getLogger, type Logger } from "../common/log.ts";
import { topTierEnv } from "../common/jit-tier.ts";
import { selfCommand as self } from "../common/self.ts";

/** Set in the worker's environment: that process serves instead of supervising. */
export const WORKER_ENV = "JMP_EXPORTER_WORKER";
/** The worker's file descriptor on which it says it has started (only under a supervisor). */
export const STARTED_FD_ENV = "JMP_EXPORTER_STARTED_FD";
const STARTED_FD = 3;

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/** What a worker's config says about restarting it; the worker tells it (tellSupervisor). */
export interface RestartPolicy {
  maxRapidFailures: number;
  rapidFailureWindowMs: number;
  /** A clean worker exit ends the supervisor (with 0) instead of starting another. */
  exitOnLeaseEnd: boolean;
}

/** Upstream's defaults (failureDetection), until a worker tells its config's. */
export const DEFAULT_POLICY: RestartPolicy = { maxRapidFailures: 5, rapidFailureWindowMs: 60_000, exitOnLeaseEnd: false };

export interface SuperviseOptions extends RestartPolicy {
  /** Program and arguments of the worker. */
  command: string[];
  /** What to check when a worker cannot start at all. */
  startHint?: string;
  log?: Logger;
}

/** The pipe to the supervisor, open from enterWorker until tellSupervisor. */
let policyFd: number | undefined;

/**
 * True in the worker, which then serves (it calls tellSupervisor once its config is
 * checked). It stops as on SIGTERM if the supervisor dies without stopping it first
 * (SIGKILL): an exporter nobody supervises would hold its devices and its lease
 * until someone finds it.
 */
export function enterWorker(): boolean {
  if (!process.env[WORKER_ENV]) return false;
  const startedFd = Number(process.env[STARTED_FD_ENV]);
  // Not inherited by what the exporter runs (shell driver commands, a nested `jmp run`).
  delete process.env[WORKER_ENV];
  delete process.env[STARTED_FD_ENV];
  if (startedFd === STARTED_FD) {
    try {
      writeSync(startedFd, "started\n");
      policyFd = startedFd;
    } catch {
      // The supervisor is gone: the check below stops this worker.
    }
  }
  const supervisor = process.ppid;
  setInterval(() => {
    if (process.ppid !== supervisor) process.kill(process.pid, "SIGTERM");
  }, 1000).unref();
  return true;
}

/** This very invocation again: the executable, or bun and the script when run from source. */
function selfCommand(): string[] {
  const args = process.argv.slice(2);
  // /proc/self/exe still names this program after an in-place upgrade replaced the
  // file, where process.execPath would say "… (deleted)".
  const exe = process.platform === "linux" ? "/proc/self/exe" : process.execPath;
  return [...self(exe), ...args];
}

/** In the worker: tells the supervisor (if any) the restart policy of `config`, and closes the pipe. */
export function tellSupervisor(config: ExporterConfig): void {
  if (policyFd === undefined) return;
  const policy: RestartPolicy = {
    maxRapidFailures: config.failureDetection?.maxRapidFailures ?? DEFAULT_POLICY.maxRapidFailures,
    rapidFailureWindowMs: (config.failureDetection?.rapidFailureWindow ?? DEFAULT_POLICY.rapidFailureWindowMs / 1000) * 1000,
    exitOnLeaseEnd: config.exitOnLeaseEnd === true,
  };
  try {
    writeSync(policyFd, `${JSON.stringify(policy)}\n`);
    closeSync(policyFd);
  } catch {
    // The supervisor is gone: enterWorker's check stops this worker.
  }
  policyFd = undefined;
}

/** `jmp run` as a service: supervise a worker running the same command; its config's limits come from the worker. */
export function superviseExporter(): Promise<number> {
  return supervise({
    command: selfCommand(),
    ...DEFAULT_POLICY,
    startHint: `check that ${process.execPath} runs on this machine ('${process.execPath} version'); ` +
      `where it cannot start itself again (qemu-user without binfmt_misc), set ${WORKER_ENV}=1 to serve without a supervisor`,
  });
}

/** Runs workers until one ends the loop; resolves to the exit code for this process. */
export async function supervise(opts: SuperviseOptions): Promise<number> {
  const log = opts.log ?? getLogger("supervisor");
  let received: NodeJS.Signals | undefined;
  let worker: ReturnType<typeof spawn> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    received = sig;
    log.info(`${sig}: passing it to the exporter`);
    // The worker leads its own process group, so its subprocesses (shell driver
    // commands) get the signal too.
    if (worker?.pid && worker.exitCode === null && worker.signalCode === null) {
      try {
        process.kill(-worker.pid, sig);
      } catch {
        // It exited in between: its exit is handled below.
      }
    }
  };
  for (const sig of FORWARDED) process.on(sig, onSignal);
  let policy: RestartPolicy = opts;
  try {
    let rapidFailures = 0;
    for (;;) {
      if (received) return signalExit(received);
      const started = performance.now();
      worker = spawn(opts.command[0]!, opts.command.slice(1), {
        stdio: ["inherit", "inherit", "inherit", "pipe"],
        detached: true,
        env: { ...process.env, ...topTierEnv(), [WORKER_ENV]: "1", [STARTED_FD_ENV]: String(STARTED_FD) },
      });
      let began = false;
      let told = "";
      const startedPipe = worker.stdio[STARTED_FD] as Readable | null;
      startedPipe?.on("data", (chunk: Buffer) => {
        began = true;
        told += chunk.toString("utf8");
      });
      const exit = await exited(worker, startedPipe);
      if ("error" in exit) {
        log.error(`cannot start the exporter (${opts.command[0]}): ${exit.error.message}`);
        return 1;
      }
      if (!began && !received && (exit.code !== 0 || exit.signal)) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
        log.error(`the exporter could not start: '${opts.command.join(" ")}' ${how} before it began; ${opts.startHint ?? "check that this command runs on its own"}`);
        return 1;
      }
      if (exit.signal) {
        if (exit.signal !== received) log.error(`the exporter was killed by ${exit.signal}`);
        return signalExit(exit.signal);
      }
      if (exit.code !== 0) return exit.code;
      if (received) return signalExit(received);
      // The policy this worker's config gave, for this exit and the next start.
      policy = policyFrom(told, policy);
      if (policy.exitOnLeaseEnd) return 0;
      const elapsedMs = performance.now() - started;
      const seconds = (elapsedMs / 1000).toFixed(1);
      const windowSeconds = policy.rapidFailureWindowMs / 1000;
      if (elapsedMs < policy.rapidFailureWindowMs) {
        rapidFailures++;
        log.warn(`the exporter exited after ${seconds}s (< ${windowSeconds}s): rapid failure ${rapidFailures}/${policy.maxRapidFailures}`);
        if (rapidFailures >= policy.maxRapidFailures) {
          log.error(`the exporter failed ${rapidFailures} times in a row, each within ${windowSeconds}s: exiting so that the service manager restarts it later`);
          return 1;
        }
      } else {
        if (rapidFailures > 0) log.info(`the exporter ran ${seconds}s (>= ${windowSeconds}s): rapid failure count reset`);
        rapidFailures = 0;
      }
      log.info("starting the exporter again");
    }
  } finally {
    for (const sig of FORWARDED) process.off(sig, onSignal);
  }
}

/**
 * The policy a worker told (the JSON line after "started"), checked as any input
 * from another process; what it did not tell, or told wrong, stays as it was.
 */
export function policyFrom(told: string, before: RestartPolicy): RestartPolicy {
  for (const line of told.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const p = JSON.parse(line) as Partial<Record<keyof RestartPolicy, unknown>>;
      const whole = (v: unknown, min: number) => (typeof v === "number" && Number.isInteger(v) && v >= min ? v : undefined);
      return {
        maxRapidFailures: whole(p.maxRapidFailures, 1) ?? before.maxRapidFailures,
        rapidFailureWindowMs: whole(p.rapidFailureWindowMs, 0) ?? before.rapidFailureWindowMs,
        exitOnLeaseEnd: typeof p.exitOnLeaseEnd === "boolean" ? p.exitOnLeaseEnd : before.exitOnLeaseEnd,
      };
    } catch {
      // Not a policy: keep the one before.
    }
  }
  return before;
}

type Exit = { code: number; signal: NodeJS.Signals | null } | { error: Error };

/**
 * Resolves once the worker has exited and its started pipe has been read to the
 * end (Bun reports the exit first), or a second later: a subprocess the worker
 * left behind may still hold the pipe open.
 */
function exited(child: ReturnType<typeof spawn>, startedPipe: Readable | null): Promise<Exit> {
  const drained = new Promise<void>((resolve) => {
    if (!startedPipe) return resolve();
    startedPipe.once("end", resolve);
    startedPipe.once("close", resolve);
    startedPipe.once("error", () => resolve());
    child.once("exit", () => setTimeout(resolve, 1000));
  });
  return new Promise((resolve) => {
    child.once("error", (error) => resolve({ error }));
    child.once("exit", (code, signal) => void drained.then(() => resolve({ code: code ?? 0, signal })));
  });
}

function signalExit(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 0);
}
