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
 */
import { spawn } from "node:child_process";
import { closeSync, writeSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { getLogger, type Logger } from "../common/log.ts";
import { selfCommand as self } from "../common/self.ts";

/** Set in the worker's environment: that process serves instead of supervising. */
export const WORKER_ENV = "JMP_EXPORTER_WORKER";
/** The worker's file descriptor on which it says it has started (only under a supervisor). */
export const STARTED_FD_ENV = "JMP_EXPORTER_STARTED_FD";
const STARTED_FD = 3;

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

export interface SuperviseOptions {
  /** Program and arguments of the worker. */
  command: string[];
  maxRapidFailures: number;
  rapidFailureWindowMs: number;
  /** A clean worker exit ends the supervisor (with 0) instead of starting another. */
  exitOnLeaseEnd: boolean;
  /** What to check when a worker cannot start at all. */
  startHint?: string;
  log?: Logger;
}

/**
 * True in the worker, which then serves. It stops as on SIGTERM if the supervisor
 * dies without stopping it first (SIGKILL): an exporter nobody supervises would hold
 * its devices and its lease until someone finds it.
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
      closeSync(startedFd);
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

/** `jmp run` as a service: supervise a worker running the same command with this config's limits. */
export function superviseExporter(config: ExporterConfig): Promise<number> {
  return supervise({
    command: selfCommand(),
    maxRapidFailures: config.failureDetection?.maxRapidFailures ?? 5,
    rapidFailureWindowMs: (config.failureDetection?.rapidFailureWindow ?? 60) * 1000,
    exitOnLeaseEnd: config.exitOnLeaseEnd,
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
  try {
    let rapidFailures = 0;
    for (;;) {
      if (received) return signalExit(received);
      const started = performance.now();
      worker = spawn(opts.command[0]!, opts.command.slice(1), {
        stdio: ["inherit", "inherit", "inherit", "pipe"],
        detached: true,
        env: { ...process.env, [WORKER_ENV]: "1", [STARTED_FD_ENV]: String(STARTED_FD) },
      });
      let began = false;
      const startedPipe = worker.stdio[STARTED_FD] as Readable | null;
      startedPipe?.on("data", () => (began = true));
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
      if (opts.exitOnLeaseEnd) return 0;
      const elapsedMs = performance.now() - started;
      const seconds = (elapsedMs / 1000).toFixed(1);
      const windowSeconds = opts.rapidFailureWindowMs / 1000;
      if (elapsedMs < opts.rapidFailureWindowMs) {
        rapidFailures++;
        log.warn(`the exporter exited after ${seconds}s (< ${windowSeconds}s): rapid failure ${rapidFailures}/${opts.maxRapidFailures}`);
        if (rapidFailures >= opts.maxRapidFailures) {
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
