/** Helpers shared by several commands: picking an exporter config and the driver catalogue. */
import { readFileSync } from "node:fs";
import { UserError } from "../common/errors.ts";
import type { ExporterConfig } from "../common/exporter-config.ts";
import type { DriverCatalog } from "../driver/catalog.ts";
import type { ClientRegistry } from "../driver/registry.ts";

export async function loadCatalog(): Promise<DriverCatalog> {
  const [{ DriverCatalog }, { BUILTIN_DRIVERS }] = await Promise.all([
    import("../driver/catalog.ts"),
    import("../../drivers/catalog.ts"),
  ]);
  return new DriverCatalog(BUILTIN_DRIVERS);
}

export async function loadRegistry(): Promise<ClientRegistry> {
  const [{ ClientRegistry }, { registerBuiltinClients }] = await Promise.all([
    import("../driver/registry.ts"),
    import("../../drivers/catalog.ts"),
  ]);
  return registerBuiltinClients(new ClientRegistry());
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

export function readFileArg(path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new UserError(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`, 2);
  }
}
