/**
 * A session's lifecycle as a client sees it, against our exporter and upstream's
 * alike: whether it is ready (its beforeLease hook may still run, or have failed),
 * its hooks' output from LogStream, and after EndSession the afterLease hook's end.
 */
import { UserError } from "../common/errors.ts";
import { HOOK_WARNING_PREFIX } from "../common/hook-warning.ts";
import type { ConnectPortal } from "../driver/portal.ts";
import { ExporterStatus, LogSource } from "../gen/jumpstarter/v1/common_pb.ts";
import type { GetStatusResponse, LogStreamResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";

/**
 * The pauses between a waiting client's status requests: soon at first (a short
 * hook is over in a few milliseconds, and every lease waits for it twice), then
 * every 0.3 s as upstream's client asks.
 */
export function statusPolls(): () => Promise<void> {
  let ms = 25;
  return () => {
    const wait = new Promise<void>((r) => setTimeout(r, ms));
    ms = Math.min(ms * 2, 300);
    return wait;
  };
}
/** After EndSession, how long a session may stay LEASE_READY before we take it that no afterLease hook follows. */
const STILL_READY_MS = 2000;

const HOOK_SOURCES: Partial<Record<LogSource, string>> = {
  [LogSource.BEFORE_LEASE_HOOK]: "beforeLease",
  [LogSource.AFTER_LEASE_HOOK]: "afterLease",
};

/** The exporter's beforeLease hook failed and ended the lease: waiting longer changes nothing. */
export class LeaseHookFailedError extends UserError {
  override name = "LeaseHookFailedError";
}

/** A session's status as a step of waiting for it: ready (perhaps with a hook's warning), or why not yet. */
export type Readiness = { ready: true; warning?: string } | { ready: false; why: string };

/** Throws when the beforeLease hook failed (the lease is over): nothing to wait for. */
export function readiness(s: GetStatusResponse, exporter: string): Readiness {
  const message = s.message ?? "";
  switch (s.status) {
    case ExporterStatus.LEASE_READY:
      return { ready: true, warning: message.startsWith(HOOK_WARNING_PREFIX) ? message.slice(HOOK_WARNING_PREFIX.length) : undefined };
    case ExporterStatus.BEFORE_LEASE_HOOK:
      return { ready: false, why: `exporter ${exporter} is running its beforeLease hook` };
    case ExporterStatus.BEFORE_LEASE_HOOK_FAILED:
      throw new LeaseHookFailedError(`exporter ${exporter}: ${message || "its beforeLease hook failed"}`, 1);
    default:
      return { ready: false, why: `the exporter is ${ExporterStatus[s.status]}` };
  }
}

/**
 * Polls a session until it is ready (see readiness); `onWait` says why it waits.
 * For a single connection (direct mode): a failed call ends the wait.
 */
export async function waitUntilReady(
  portal: ConnectPortal,
  exporter: string,
  opts: { onWait?: (why: string) => void; signal?: AbortSignal } = {},
): Promise<{ warning?: string }> {
  const pause = statusPolls();
  for (;;) {
    opts.signal?.throwIfAborted();
    const step = readiness(await portal.getStatus(), exporter);
    if (step.ready) return { warning: step.warning };
    opts.onWait?.(`waiting for the exporter: ${step.why}`);
    await pause();
  }
}

/** Stops following; with `settleMs`, first lets what is on its way arrive (until quiet for a moment, at most that long). */
export type StopFollowing = (settleMs?: number) => Promise<void>;

/** A stream quiet for this long has delivered what it had. */
const QUIET_MS = 150;

/**
 * Prints the session's hook output as it comes (and everything else it logs with
 * `all`), until the returned function is called or the connection ends.
 */
export function followExporterLogs(portal: ConnectPortal, print: (line: string) => void, opts: { all?: boolean } = {}): StopFollowing {
  const abort = new AbortController();
  let last = performance.now();
  let ended = false;
  void (async () => {
    try {
      for await (const entry of portal.exporter.logStream({}, { signal: abort.signal })) {
        last = performance.now();
        const line = formatLogEntry(entry, opts.all ?? false);
        if (line !== undefined) print(line);
      }
    } catch {
      // The session ended (or we stopped following): its logs end with it.
    }
    ended = true;
  })();
  return async (settleMs = 0) => {
    const from = performance.now();
    const until = from + settleMs;
    while (!ended && performance.now() < until && performance.now() - Math.max(last, from) < QUIET_MS) await new Promise((r) => setTimeout(r, 20));
    abort.abort();
  };
}

/** A hook's line as `beforeLease: …`; other entries only with `all`, as `SEVERITY driver: …`. */
export function formatLogEntry(e: LogStreamResponse, all: boolean): string | undefined {
  const hook = e.source !== undefined ? HOOK_SOURCES[e.source] : undefined;
  if (hook) return `${hook}: ${e.message}`;
  if (!all || !e.message) return undefined;
  return `${e.severity || "INFO"} ${e.driverType || "exporter"}: ${e.message}`;
}

/** How a session ended, as its afterLease hook left it. */
export type SessionEnd = { ok: true; warning?: string } | { ok: false; message: string };

/**
 * EndSession, then waits while the exporter's afterLease hook runs (its output
 * comes meanwhile), at most `timeoutMs`. An exporter that lets go of the
 * connection, or answers no more, has nothing more to say: that is an ending too.
 */
export async function endSession(portal: ConnectPortal, timeoutMs: number): Promise<SessionEnd> {
  try {
    await portal.exporter.endSession({}, { timeoutMs: 5000 });
  } catch {
    // The exporter may already have let go (the lease ended): nothing to end then.
    return { ok: true };
  }
  const deadline = Date.now() + timeoutMs;
  // An exporter that runs nothing on EndSession (direct mode) stays LEASE_READY.
  const readyUntil = Date.now() + STILL_READY_MS;
  const pause = statusPolls();
  while (Date.now() < deadline) {
    let s: GetStatusResponse;
    try {
      s = await portal.exporter.getStatus({}, { timeoutMs: 5000 });
    } catch {
      return { ok: true };
    }
    const message = s.message ?? "";
    if (s.status === ExporterStatus.AFTER_LEASE_HOOK_FAILED) return { ok: false, message: message || "the afterLease hook failed" };
    if (s.status === ExporterStatus.AVAILABLE || s.status === ExporterStatus.OFFLINE ||
      (s.status === ExporterStatus.LEASE_READY && Date.now() > readyUntil)) {
      return { ok: true, warning: message.startsWith(HOOK_WARNING_PREFIX) ? message.slice(HOOK_WARNING_PREFIX.length) : undefined };
    }
    await pause();
  }
  return { ok: false, message: `the exporter's afterLease hook did not finish within ${Math.round(timeoutMs / 1000)} s` };
}
