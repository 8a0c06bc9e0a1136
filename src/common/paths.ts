/** Where configuration lives, as upstream: `$JMP_CLIENT_CONFIG_HOME`, else `$XDG_CONFIG_HOME/jumpstarter`. */
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError } from "./errors.ts";

export function configHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JMP_CLIENT_CONFIG_HOME) return env.JMP_CLIENT_CONFIG_HOME;
  const xdg = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(xdg, "jumpstarter");
}

/** System-wide, read-only fallback for exporter configs (the user's directory wins). */
export const SYSTEM_CONFIG_DIR = "/etc/jumpstarter";

export function exporterConfigDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  return [join(configHome(env), "exporters"), join(SYSTEM_CONFIG_DIR, "exporters")];
}

/** Aliases become file names, so they must not escape their directory. */
export function checkAlias(alias: string, what = "alias"): string {
  if (!alias || alias === "." || alias === ".." || alias.includes("/") || alias.includes("\0")) {
    throw new UserError(`invalid ${what} '${alias}': it must be a plain name (no '/', not '.' or '..')`, 2);
  }
  return alias;
}

/**
 * Where a controller keeps its state when not told: /var/lib/jumpstarter for root
 * (a service), else `$XDG_DATA_HOME/jumpstarter` (~/.local/share/jumpstarter).
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.getuid?.() === 0 && !env.XDG_DATA_HOME) return "/var/lib/jumpstarter";
  const base = env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share");
  return join(base, "jumpstarter");
}
