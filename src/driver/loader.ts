/**
 * Drivers folders: a lab adds a driver by dropping one `.ts` or `.js` file in a
 * folder, with no build step. Each named export that extends Driver becomes the
 * config type `<file name>.<Class>`; each that extends DriverClient becomes the
 * client class `<file name>.<Class>` (plus its `static labels`), used where the
 * allow-list permits.
 *
 * A driver file is a top-level `.ts`/`.js` file of a folder; subfolders are not
 * scanned, so a driver file can keep helpers there, and names starting with `_`
 * or `.`, tests (`*.test.ts`) and declarations (`*.d.ts`) are skipped too.
 * jmp's own source checkout keeps its built-in drivers in subfolders of
 * `drivers/` beside two wiring files; that folder is recognised (it sits next to
 * `src/driver/index.ts`) and skipped, since those drivers are compiled in already.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, UserError } from "../common/errors.ts";
import type { ExportNode, ExporterConfig } from "../common/exporter-config.ts";
import { closest, joinPath } from "../common/schema.ts";
import type { CatalogEntry, DriverCatalog } from "./catalog.ts";
import { DriverClient } from "./client.ts";
import { Driver, type DriverClass } from "./driver.ts";
import type { ClientClass, ClientRegistry } from "./registry.ts";
import type { DriversDir } from "./search-path.ts";
import { API_VALUES, DRIVER_MODULE, provideDriverModule } from "./virtual-module.ts";

export { candidateDirs, type DirOrigin, type DriversDir, driversSearchPath } from "./search-path.ts";

const DRIVER_EXTENSIONS = [".ts", ".js"];

/** The driver files of one folder, sorted by name. */
export function driverFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new UserError(`cannot read the drivers folder ${dir}: ${(e as Error).message}`, 1);
  }
  return names
    .filter((name) => DRIVER_EXTENSIONS.includes(extname(name)))
    .filter((name) => !/^[._]/.test(name) && !/\.(test|spec)\.[jt]s$/.test(name) && !name.endsWith(".d.ts"))
    .filter((name) => statSync(join(dir, name), { throwIfNoEntry: false })?.isFile())
    .sort()
    .map((name) => join(dir, name));
}

export interface LoadedClient {
  name: string;
  labels: string[];
  client: ClientClass;
}

export interface DriverFile {
  file: string;
  /** The file name without extension: the first part of its config types. */
  stem: string;
  drivers: CatalogEntry[];
  clients: LoadedClient[];
  /** Named exports that are neither drivers nor clients. */
  others: string[];
}

export interface BrokenFile {
  file: string;
  stem: string;
  message: string;
}

export interface DriversFolders {
  dirs: DriversDir[];
  files: DriverFile[];
  broken: BrokenFile[];
  /** A file whose name an earlier folder already provides: not loaded. */
  shadowed: { file: string; by: string }[];
}

/**
 * Loads every driver file of these folders and adds its drivers to `catalog` and
 * its clients (as not built-in) to `registry`. A file that fails to load, or that
 * would take a type or client label someone else has, is reported in `broken`
 * and contributes nothing; the other files still load.
 */
export async function loadDriverFiles(
  dirs: DriversDir[],
  into: { catalog?: DriverCatalog; registry?: ClientRegistry } = {},
): Promise<DriversFolders> {
  const result: DriversFolders = { dirs, files: [], broken: [], shadowed: [] };
  const byStem = new Map<string, string>();
  for (const dir of dirs) {
    for (const file of driverFiles(dir.path)) {
      const stem = fileStem(file);
      const earlier = byStem.get(stem);
      if (earlier) {
        result.shadowed.push({ file, by: earlier });
        continue;
      }
      byStem.set(stem, file);
      try {
        const loaded = classify(file, stem, await importFile(file));
        checkConflicts(loaded, into);
        for (const d of loaded.drivers) into.catalog?.add(d);
        for (const c of loaded.clients) into.registry?.register(c.labels, c.client, { builtin: false });
        result.files.push(loaded);
      } catch (e) {
        result.broken.push({ file, stem, message: describeLoadError(e, file) });
      }
    }
  }
  return result;
}

function fileStem(file: string): string {
  return basename(file, extname(file));
}

async function importFile(file: string): Promise<Record<string, unknown>> {
  provideDriverModule();
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/** A problem found after the file loaded: reported as is, without a stack position. */
class DriverFileError extends Error {}

function isSubclass(value: unknown, base: abstract new (...args: any[]) => unknown): boolean {
  return typeof value === "function" && value.prototype instanceof base;
}

function classify(file: string, stem: string, mod: Record<string, unknown>): DriverFile {
  const out: DriverFile = { file, stem, drivers: [], clients: [], others: [] };
  for (const [name, value] of Object.entries(mod)) {
    // Re-exports of the module's own classes (GenericClient, Composite) are not the file's.
    if (name === "default" || API_VALUES.has(value)) {
      out.others.push(name);
    } else if (isSubclass(value, Driver)) {
      const driver = value as DriverClass;
      if (typeof driver.client !== "string" || !driver.client) {
        throw new DriverFileError(`driver ${name} does not declare its client class: add static client = "${stem}.${name}Client" (or the client of the interface it implements)`);
      }
      out.drivers.push({ name: `${stem}.${name}`, types: [`${stem}.${name}`], driver, source: file });
    } else if (isSubclass(value, DriverClient)) {
      const labels = (value as { labels?: unknown }).labels ?? [];
      if (!Array.isArray(labels) || labels.some((l) => typeof l !== "string" || !l)) {
        throw new DriverFileError(`client ${name}: static labels must be a list of client class paths (strings)`);
      }
      out.clients.push({ name: `${stem}.${name}`, labels: [`${stem}.${name}`, ...labels], client: value as ClientClass });
    } else {
      out.others.push(name);
    }
  }
  return out;
}

/** Built-in types and client labels are never replaced, nor an earlier file's labels. */
function checkConflicts(loaded: DriverFile, into: { catalog?: DriverCatalog; registry?: ClientRegistry }): void {
  for (const d of loaded.drivers) {
    const taken = into.catalog?.resolve(d.name);
    if (taken) throw new DriverFileError(`type ${d.name} is already ${taken.source === "built-in" ? "a built-in driver's" : `taken by ${taken.source}`}; rename the file or the class`);
  }
  const known = new Set(into.registry?.labels() ?? []);
  for (const c of loaded.clients) {
    const label = c.labels.find((l) => known.has(l));
    if (label) throw new DriverFileError(`client ${c.name}: label ${label} already has a client class (built-in clients cannot be replaced)`);
  }
}

interface BunMessage {
  name: string;
  message: string;
  position?: { file: string; line: number; column: number } | null;
}

/** One line saying what went wrong and where, without our own stack frames. */
export function describeLoadError(e: unknown, file: string): string {
  if (e instanceof DriverFileError) return e.message;
  // Several syntax errors arrive together; the first one is what to fix first.
  if (e instanceof AggregateError && e.errors.length) {
    const more = e.errors.length - 1;
    return `${describeLoadError(e.errors[0], file)}${more ? ` (and ${more} more)` : ""}`;
  }
  const err = e as BunMessage & { stack?: string };
  if (err?.name === "BuildMessage") {
    const p = err.position;
    const where = p ? `${p.file === file ? "" : `${p.file}, `}line ${p.line}, column ${p.column}` : "";
    return `syntax error${where ? ` at ${where}` : ""}: ${err.message}`;
  }
  if (err?.name === "ResolveMessage") {
    const hint = /Cannot find package/.test(err.message) && !err.message.includes(`'${DRIVER_MODULE}'`)
      ? ` (a driver file can import ${DRIVER_MODULE}, node: and bun: modules, and files beside it; there is no node_modules)`
      : "";
    return `${err.message}${hint}`;
  }
  if (e instanceof Error) {
    const frame = e.stack?.split("\n").find((l) => l.includes(file));
    const at = frame ? /:(\d+):(\d+)\)?$/.exec(frame) : null;
    return `${e.name}: ${e.message}${at ? ` (at line ${at[1]})` : ""}`;
  }
  return `threw ${String(e)}`;
}

/**
 * Checks an exporter config's types against the drivers folders, so a type that
 * names a driver file gets a precise error at its key path: the file failed to
 * load, it lacks that class, the class is not a Driver, or no such file exists.
 * Types of built-in drivers (and unknown types of other forms) are left to the
 * tree builder.
 */
export function checkConfigTypes(config: Pick<ExporterConfig, "file" | "export">, folders: DriversFolders, catalog: DriverCatalog): void {
  const visit = (nodes: Record<string, ExportNode>) => {
    for (const node of Object.values(nodes)) {
      if (node.kind === "ref") continue;
      if (node.kind === "driver" && !catalog.resolve(node.type)) {
        const problem = typeProblem(node.type, folders);
        if (problem) throw new ConfigError(config.file, joinPath(node.keyPath, "type"), problem);
      }
      visit(node.children);
    }
  };
  visit(config.export);
}

function typeProblem(type: string, folders: DriversFolders): string | undefined {
  const dot = type.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const stem = type.slice(0, dot);
  const name = type.slice(dot + 1);
  const broken = folders.broken.find((b) => b.stem === stem);
  if (broken) return `driver file ${broken.file} failed to load: ${broken.message}`;
  const file = folders.files.find((f) => f.stem === stem);
  if (file) {
    const drivers = file.drivers.map((d) => d.name.slice(stem.length + 1));
    const offers = drivers.length ? `it offers ${drivers.join(", ")}` : "it offers no Driver classes";
    if (file.clients.some((c) => c.name === type)) return `${file.file} exports ${name}, a client class; a type names a Driver class (${offers})`;
    if (file.others.includes(name)) return `${file.file} exports ${name}, but it is not a Driver class (a driver extends Driver from "${DRIVER_MODULE}"); ${offers}`;
    const near = closest(name, drivers);
    const defaults = file.others.includes("default") ? "; a default export is not used, export the class by name" : "";
    return `${file.file} has no export ${name}${near ? ` (did you mean ${stem}.${near}?)` : ""}; ${offers}${defaults}`;
  }
  // Upstream class paths have several dots; `<file>.<Class>` has one.
  if (stem.includes(".")) return undefined;
  const stems = [...folders.files, ...folders.broken].map((f) => f.stem);
  const near = closest(stem, stems);
  const where = folders.dirs.length ? folders.dirs.map((d) => d.path).join(", ") : "none found";
  return `unknown driver type '${type}': no driver file ${stem}.ts or ${stem}.js in the drivers folders (${where})${near ? `; did you mean ${near}.${name}?` : ""}`;
}
