/**
 * Upstream's ExporterConfig YAML (`kind: ExporterConfig`), parsed and checked for
 * shape. Driver `type:` strings and their `config:` maps are checked later, against
 * the driver catalogue, by the driver runtime (which knows the drivers).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseDuration } from "./duration.ts";
import { ConfigError, describeValue, UserError } from "./errors.ts";
import { checkAlias, exporterConfigDirs } from "./paths.ts";
import {
  anything, boolean, type Field, isPlainObject, joinPath, number, object, oneOf, optional, parseShape, record,
  SchemaError, string, withDefault,
} from "./schema.ts";
import { readYamlFile, writeYamlFile } from "./yaml-file.ts";

export const API_VERSION = "jumpstarter.dev/v1alpha1";

/** One entry of the `export:` tree. `keyPath` locates it in the file for later errors. */
export type ExportNode =
  | {
      kind: "driver";
      keyPath: string;
      type: string;
      config: Record<string, unknown>;
      children: Record<string, ExportNode>;
      description?: string;
      methodsDescription: Record<string, string>;
    }
  | {
      kind: "composite";
      keyPath: string;
      children: Record<string, ExportNode>;
      description?: string;
      methodsDescription: Record<string, string>;
    }
  | { kind: "ref"; keyPath: string; ref: string; description?: string; methodsDescription: Record<string, string> };

export type OnFailure = "warn" | "endLease" | "exit";
const ON_FAILURE = ["warn", "endLease", "exit"] as const;

/** Upstream's HookInstanceConfig: `script` inline or a file's path, run by `exec`, within `timeout` seconds. */
const hookShape = {
  script: string({ description: "inline script, or the path of a script file" }),
  exec: optional(string({ nonEmpty: true, description: "interpreter (default /bin/sh; python3 for a .py file)" })),
  timeout: withDefault(number({ integer: true, min: 1, description: "seconds" }), 120),
  onFailure: withDefault(oneOf(ON_FAILURE), "warn"),
};

/** A duration as users type it (`90s`, `10m`, `1h`) or a number of seconds. */
function duration(what: string): Field<number> {
  const expected = "a duration such as 90s, 10m or 1h (or a number of seconds)";
  return {
    expected,
    optional: false,
    parse(v, p) {
      if (typeof v !== "string" && typeof v !== "number") throw new SchemaError(p, `expected ${expected}, got ${describeValue(v)}`);
      let ms: number;
      try {
        ms = parseDuration(String(v), what);
      } catch (e) {
        throw new SchemaError(p, (e as Error).message);
      }
      if (ms < 1000) throw new SchemaError(p, `must be at least 1s: got '${v}'`);
      return ms;
    },
  };
}

/**
 * Ours, beyond upstream: a check run between leases, after every `every` leases
 * and/or when idle for `interval`. A failure takes the exporter out of scheduling
 * (onFailure endLease, the default here), only warns (warn), or stops it (exit).
 * Upstream's exporter ignores the key.
 */
const healthCheckShape = {
  ...hookShape,
  onFailure: withDefault(oneOf(ON_FAILURE), "endLease"),
  every: optional(number({ integer: true, min: 1, description: "leases" })),
  interval: optional(duration("hooks.healthCheck.interval")),
};

function checkHealthSchedule(hc: { every?: number; interval?: number } | undefined): void {
  if (hc && hc.every === undefined && hc.interval === undefined) {
    throw new SchemaError("hooks.healthCheck", "needs 'every' (a number of leases), 'interval' (a duration such as 10m), or both");
  }
}

const topShape = {
  apiVersion: withDefault(string(), API_VERSION),
  kind: withDefault(oneOf(["ExporterConfig"]), "ExporterConfig"),
  metadata: withDefault(object({ namespace: optional(string()), name: optional(string()) }), {
    namespace: undefined,
    name: undefined,
  }),
  endpoint: optional(string()),
  token: optional(string()),
  tls: withDefault(object({ ca: optional(string()), insecure: withDefault(boolean(), false) }), {
    ca: undefined,
    insecure: false,
  }),
  grpcOptions: optional(record(anything())),
  grpcConfig: optional(record(anything())),
  description: optional(string()),
  motd: optional(string()),
  export: anything(),
  hooks: optional(object({
    beforeLease: optional(object(hookShape)),
    afterLease: optional(object(hookShape)),
    healthCheck: optional(object(healthCheckShape)),
  })),
  exitOnLeaseEnd: withDefault(boolean(), false),
  /** Ours: console output recorded per lease and kept by the controller (`jmp lease logs`); 0 turns it off. */
  consoleCapture: withDefault(object({
    maxBytes: withDefault(number({ integer: true, min: 0, max: 64 * 2 ** 20 }), 8 * 2 ** 20),
  }), { maxBytes: 8 * 2 ** 20 }),
  failureDetection: optional(object({
    maxRapidFailures: withDefault(number({ integer: true, min: 1 }), 5),
    rapidFailureWindow: withDefault(number({ min: 1 }), 60),
  })),
};

type Top = ReturnType<typeof parseTop>;
function parseTop(value: unknown) {
  return parseShape(topShape, value);
}

export type ExporterConfig = Omit<Top, "export" | "grpcConfig"> & {
  /** The file it came from (or a description such as "<built-in demo>"). */
  file: string;
  alias?: string;
  export: Record<string, ExportNode>;
};

type Hooks = NonNullable<ExporterConfig["hooks"]>;
export type HookConfig = NonNullable<Hooks["beforeLease"]>;
export type HealthCheckConfig = NonNullable<Hooks["healthCheck"]>;

export function parseExporterConfig(value: unknown, file: string): ExporterConfig {
  try {
    if (value === null || value === undefined) throw new SchemaError("", "the file is empty; expected an ExporterConfig mapping");
    const top = parseTop(value);
    checkHealthSchedule(top.hooks?.healthCheck);
    const exportTree = parseExportTree(top.export ?? {}, "export");
    const { grpcConfig, ...rest } = top;
    return { ...rest, grpcOptions: top.grpcOptions ?? grpcConfig, file, export: exportTree };
  } catch (e) {
    if (e instanceof SchemaError) throw new ConfigError(file, e.keyPath, e.problem);
    throw e;
  }
}

function parseExportTree(value: unknown, keyPath: string): Record<string, ExportNode> {
  if (!isPlainObject(value)) throw new SchemaError(keyPath, "expected a mapping of names to drivers");
  const out: Record<string, ExportNode> = {};
  for (const [name, node] of Object.entries(value)) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name.includes(".")) {
      throw new SchemaError(joinPath(keyPath, name), "a driver name may hold letters, digits, '_' and '-' only");
    }
    out[name] = parseExportNode(node, joinPath(keyPath, name));
  }
  return out;
}

const nodeShape = {
  type: optional(string({ nonEmpty: true })),
  ref: optional(string({ nonEmpty: true })),
  config: optional(record(anything())),
  children: optional(anything()),
  description: optional(string()),
  methods_description: optional(record(string())),
};

function parseExportNode(value: unknown, keyPath: string): ExportNode {
  if (!isPlainObject(value)) {
    throw new SchemaError(keyPath, "expected a mapping with 'type' (and 'config', 'children'), 'ref', or 'children'");
  }
  const n = parseShape(nodeShape, value, keyPath);
  const methodsDescription = n.methods_description ?? {};
  if (n.ref !== undefined) {
    for (const key of ["type", "config", "children"] as const) {
      if (n[key] !== undefined) throw new SchemaError(joinPath(keyPath, key), "not allowed beside 'ref'");
    }
    return { kind: "ref", keyPath, ref: n.ref, description: n.description, methodsDescription };
  }
  const children = n.children === undefined ? {} : parseExportTree(n.children, joinPath(keyPath, "children"));
  if (n.type === undefined) {
    if (n.config !== undefined) throw new SchemaError(joinPath(keyPath, "type"), "missing; 'config' needs a driver type");
    if (n.children === undefined) {
      throw new SchemaError(keyPath, "expected 'type' (a driver), 'ref' (another entry) or 'children'");
    }
    return { kind: "composite", keyPath, children, description: n.description, methodsDescription };
  }
  return { kind: "driver", keyPath, type: n.type, config: n.config ?? {}, children, description: n.description, methodsDescription };
}

export function loadExporterConfigFile(file: string): ExporterConfig {
  return parseExporterConfig(readYamlFile(file), file);
}

/** The file of an exporter alias: the user's directory first, then /etc/jumpstarter. */
export function findExporterConfig(alias: string, env: NodeJS.ProcessEnv = process.env): string {
  checkAlias(alias, "exporter alias");
  const dirs = exporterConfigDirs(env);
  for (const dir of dirs) {
    const file = join(dir, `${alias}.yaml`);
    if (existsSync(file)) return file;
  }
  throw new UserError(
    `no exporter config named '${alias}' (looked for ${dirs.map((d) => join(d, `${alias}.yaml`)).join(" and ")}); ` +
      `create one with 'jmp config exporter create ${alias}' or pass --exporter-config FILE`,
    2,
  );
}

export function loadExporterConfigAlias(alias: string, env: NodeJS.ProcessEnv = process.env): ExporterConfig {
  return { ...loadExporterConfigFile(findExporterConfig(alias, env)), alias };
}

export interface ExporterConfigEntry {
  alias: string;
  file: string;
  readOnly: boolean;
}

export function listExporterConfigs(env: NodeJS.ProcessEnv = process.env): ExporterConfigEntry[] {
  const seen = new Map<string, ExporterConfigEntry>();
  const [userDir, systemDir] = exporterConfigDirs(env);
  for (const [dir, readOnly] of [[userDir!, false], [systemDir!, true]] as const) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      if (!name.endsWith(".yaml")) continue;
      const alias = name.slice(0, -5);
      if (!seen.has(alias)) seen.set(alias, { alias, file: join(dir, name), readOnly });
    }
  }
  return [...seen.values()];
}

export function writeExporterConfig(alias: string, doc: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): string {
  checkAlias(alias, "exporter alias");
  const file = join(exporterConfigDirs(env)[0]!, `${alias}.yaml`);
  writeYamlFile(file, doc);
  return file;
}

export function deleteExporterConfig(alias: string, env: NodeJS.ProcessEnv = process.env): string {
  checkAlias(alias, "exporter alias");
  const file = join(exporterConfigDirs(env)[0]!, `${alias}.yaml`);
  if (!existsSync(file)) {
    const system = join(exporterConfigDirs(env)[1]!, `${alias}.yaml`);
    if (existsSync(system)) throw new UserError(`${system} is a system config and read-only here`, 2);
    throw new UserError(`no exporter config named '${alias}' in ${exporterConfigDirs(env)[0]}`, 2);
  }
  rmSync(file);
  return file;
}
