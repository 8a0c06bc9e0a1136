/**
 * Where drivers folders are looked for (loader.ts loads what they hold). Apart from
 * the loader, so that `jmp run`'s supervisor, which only passes the search path on
 * to its worker (JMP_DRIVERS_DIR), does not load the driver runtime.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../common/errors.ts";
import { configHome, SYSTEM_CONFIG_DIR } from "../common/paths.ts";

export type DirOrigin = "--drivers-dir" | "JMP_DRIVERS_DIR" | "./drivers" | "user" | "system";

export interface DriversDir {
  /** Absolute. */
  path: string;
  origin: DirOrigin;
}

/** Every place drivers folders may be, in search order (first wins), existing or not. */
export function candidateDirs(opts: { dirs?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): DriversDir[] {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const fromEnv = (env.JMP_DRIVERS_DIR ?? "").split(":").filter(Boolean);
  return [
    ...(opts.dirs ?? []).map((d) => ({ path: resolve(cwd, d), origin: "--drivers-dir" as const })),
    ...fromEnv.map((d) => ({ path: resolve(cwd, d), origin: "JMP_DRIVERS_DIR" as const })),
    { path: resolve(cwd, "drivers"), origin: "./drivers" },
    { path: join(configHome(env), "drivers"), origin: "user" },
    { path: join(SYSTEM_CONFIG_DIR, "drivers"), origin: "system" },
  ];
}

/**
 * The drivers folders to load, in order: missing ones are skipped, except one named
 * with --drivers-dir, which is an error; a folder reached twice counts once.
 */
export function driversSearchPath(opts: { dirs?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): DriversDir[] {
  const seen = new Set<string>();
  const out: DriversDir[] = [];
  for (const dir of candidateDirs(opts)) {
    if (!isDirectory(dir.path)) {
      if (dir.origin === "--drivers-dir") {
        const what = existsSync(dir.path) ? "is not a directory" : "no such directory";
        throw new UserError(`--drivers-dir ${dir.path}: ${what}`, 2);
      }
      continue;
    }
    const real = realpathSync(dir.path);
    if (seen.has(real) || isBuiltinSource(real)) continue;
    seen.add(real);
    out.push(dir);
  }
  return out;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** jmp's source tree: `drivers/` beside `src/driver/index.ts` (the module driver files import). */
function isBuiltinSource(dir: string): boolean {
  return existsSync(join(dir, "..", "src", "driver", "index.ts")) && existsSync(join(dir, "catalog.ts"));
}
