/** Helpers shared by several commands: picking an exporter config and the driver catalogue. */
import type { ArgsDef } from "citty";
import { parseDuration } from "../common/duration.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import type { ExporterConfig } from "../common/exporter-config.ts";
import type { DriverCatalog } from "../driver/catalog.ts";
import type { DriversFolders } from "../driver/loader.ts";
import type { ClientRegistry } from "../driver/registry.ts";

/** `--drivers-dir DIR` for commands that load drivers; see {@link applyDriversDirArgs}. */
export const DRIVERS_DIR_ARG = {
  driversDir: repeatable({
    type: "string",
    description: "load driver files from DIR too; searched before JMP_DRIVERS_DIR, ./drivers, $XDG_CONFIG_HOME/jumpstarter/drivers, /etc/jumpstarter/drivers",
    valueHint: "DIR",
  }),
} as const satisfies ArgsDef;

/**
 * Resolves the drivers search path once, with the `--drivers-dir` folders first, and
 * puts it in JMP_DRIVERS_DIR: later loads in this process and every child (the `j`
 * of a shell, even after a `cd`) see the same folders. Pass the command's `args`.
 */
export async function applyDriversDirArgs(args: { driversDir?: string | string[] }): Promise<void> {
  const { driversSearchPath } = await import("../driver/search-path.ts");
  const dirs = driversSearchPath({ dirs: listOf(args.driversDir) });
  process.env.JMP_DRIVERS_DIR = dirs.map((d) => d.path).join(":");
}

const listOf = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);


/**
 * Built-in drivers and clients plus those of the drivers folders (the search path
 * of JMP_DRIVERS_DIR and the standard places), and what the folders held.
 */
export async function loadDrivers(): Promise<{
  catalog: DriverCatalog;
  registry: ClientRegistry;
  folders: DriversFolders;
}> {
  const [{ DriverCatalog }, { ClientRegistry }, { BUILTIN_DRIVERS, registerBuiltinClients }, { driversSearchPath, loadDriverFiles }] = await Promise.all([
    import("../driver/catalog.ts"),
    import("../driver/registry.ts"),
    import("../../drivers/catalog.ts"),
    import("../driver/loader.ts"),
  ]);
  const catalog = new DriverCatalog(BUILTIN_DRIVERS);
  const registry = registerBuiltinClients(new ClientRegistry());
  const folders = await loadDriverFiles(driversSearchPath(), { catalog, registry });
  return { catalog, registry, folders };
}

/**
 * The driver catalogue for an exporter. Given its config, a type naming a driver
 * file that failed to load (or lacks that class) is a ConfigError at its key path;
 * other broken driver files are warnings, as they may be meant for other configs.
 */
export async function loadCatalog(opts: { config?: Pick<ExporterConfig, "file" | "export"> } = {}): Promise<DriverCatalog> {
  const { catalog, folders } = await loadDrivers();
  if (opts.config) {
    const { checkConfigTypes } = await import("../driver/loader.ts");
    checkConfigTypes(opts.config, folders, catalog);
  }
  await warnBroken(folders);
  return catalog;
}

/**
 * Client classes: built-in, then those of the drivers folders (used only where the
 * allow-list permits). Broken driver files are warnings unless the parent (a local
 * `jmp shell`, whose exporter reported them already) sets _JMP_SUPPRESS_DRIVER_WARNINGS.
 */
export async function loadRegistry(): Promise<ClientRegistry> {
  // The built-in clients without their drivers (drivers/clients.ts): a client never
  // needs a driver class, and loading them all was a sixth of a `j` command. Without
  // a catalogue, a drivers-folder file is not checked for driver types that clash
  // with the built-ins; the exporter checks that, and refuses such a file.
  const [{ ClientRegistry }, { registerBuiltinClients }, { driversSearchPath, loadDriverFiles }] = await Promise.all([
    import("../driver/registry.ts"),
    import("../../drivers/clients.ts"),
    import("../driver/loader.ts"),
  ]);
  const registry = registerBuiltinClients(new ClientRegistry());
  const folders = await loadDriverFiles(driversSearchPath(), { registry });
  if (process.env._JMP_SUPPRESS_DRIVER_WARNINGS !== "1") await warnBroken(folders);
  return registry;
}

async function warnBroken(folders: DriversFolders): Promise<void> {
  if (folders.broken.length === 0) return;
  const log = (await import("../common/log.ts")).getLogger("drivers");
  for (const b of folders.broken) log.warn(`${b.file}: not loaded: ${b.message}`);
}

/** Exactly one of `--exporter ALIAS` and `--exporter-config FILE`. */
export async function exporterConfigFromArgs(args: { exporter?: string; exporterConfig?: string }): Promise<ExporterConfig | undefined> {
  const { loadExporterConfigAlias, loadExporterConfigFile } = await import("../common/exporter-config.ts");
  if (args.exporter && args.exporterConfig) throw new UserError("give either --exporter or --exporter-config, not both", 2);
  if (args.exporterConfig) return loadExporterConfigFile(args.exporterConfig);
  if (args.exporter) return loadExporterConfigAlias(args.exporter);
  return undefined;
}

/** `[HOST:]PORT` → host and port; the host defaults to all interfaces. */
export function parseListenAddress(value: string, flag: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UserError(`'${flag}' must be [HOST:]PORT with a port from 0 to 65535: got '${value}'`, 2);
  }
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "0.0.0.0", port };
}

/** A whole-number flag from `min` (to `max`, when given); anything else is a usage error naming the flag. */
export function wholeNumberArg(text: string, flag: string, min: number, max?: number): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
    const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UserError(`'${flag}' must be a whole number ${range}: got '${text}'`, 2);
  }
  return n;
}

/** A duration flag (`30m`, `7d`, ...) in milliseconds, longer than zero; anything else is a usage error naming the flag. */
export function durationArg(text: string, flag: string): number {
  let ms: number;
  try {
    ms = parseDuration(text, flag);
  } catch (e) {
    throw new UserError((e as Error).message, 2);
  }
  if (ms <= 0) throw new UserError(`'${flag}' must be longer than zero: got '${text}'`, 2);
  return ms;
}

/** A file a flag names, as text. (node:fs is loaded here, not at the top: command definitions import this file, and `jmp --help` should not pay for it.) */
export async function readFileArg(path: string, flag: string): Promise<string> {
  const { readFileSync } = await import("node:fs");
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new UserError(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`, 2);
  }
}
