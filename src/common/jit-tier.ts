/**
 * The long-running roles (controller, router, exporter worker) run without
 * JavaScriptCore's top JIT tier, FTL. Its compiler thread kept recompiling hot
 * request paths long after start-up, and on a small machine that thread competes
 * with the one serving: measured side by side (bench/README.md, round 9), the
 * controller's CPU per lease fell 11–15% over 20- and 30-s churns, the exporter's
 * CPU per driver call ~25% and its idle RSS ~9 MiB, a call through the router's
 * p99 ~28%, and no figure got worse beyond the machine's noise. Short commands
 * never reach FTL, so they are left alone.
 *
 * JSC reads its options once, from the environment, before any JavaScript runs: a
 * daemon that finds the option unset execs itself again with it set. execve keeps
 * the process id, open descriptors and arguments, so systemd, pid files and
 * supervisors see one process. The option is then taken out of this process's
 * environment, so what the daemon starts (hooks, shell driver commands) gets the
 * environment the user gave. A user who sets the option decides: left as given.
 */
import { isCompiled } from "./self.ts";

/** Bun hands `BUN_JSC_<name>` to JavaScriptCore as its option `<name>`. */
export const FTL_OPTION = "BUN_JSC_useFTLJIT";
/** Marks the environment we set the option in (as opposed to a user's own choice). */
const MARK = "JMP_JIT_TIER_SET";

/**
 * Called first thing by a daemon: returns if this process already runs so (or the
 * user chose), else replaces it with itself, started so (does not return).
 */
export function runWithoutTopTier(): void {
  // A user's own setting stays in the environment: that is their choice, kept.
  if (startedWithoutTopTier() || process.env[FTL_OPTION] !== undefined || typeof process.execve !== "function") return;
  const argv = isCompiled() ? [process.argv0, ...process.argv.slice(2)] : process.argv;
  try {
    process.execve(process.execPath, argv, { ...process.env, ...topTierEnv() });
  } catch {
    // Not worth failing a daemon for: it runs as it is.
  }
}

/**
 * True when this process was started so (by runWithoutTopTier or a supervisor's
 * topTierEnv); takes the option out of the environment its children get.
 */
export function startedWithoutTopTier(): boolean {
  if (process.env[MARK] !== "1") return false;
  delete process.env[MARK];
  delete process.env[FTL_OPTION];
  return true;
}

/** What to add to the environment of a daemon of ours this process spawns, so it starts so without execing again. */
export function topTierEnv(): Record<string, string> {
  // A user's own setting is in process.env, and so in the child's already.
  if (process.env[FTL_OPTION] !== undefined) return {};
  return { [FTL_OPTION]: "0", [MARK]: "1" };
}
