/**
 * Upstream's ExporterConfig YAML (`kind: ExporterConfig`), parsed and checked for
 * shape. Driver `type:` strings and their `config:` maps are checked later, against
 * the driver catalogue, by the driver runtime (which knows the drivers).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, UserError } from "./errors.ts";
import { checkAlias, exporterConfigDirs } from "./paths.ts";
import {
  anything, boolean, isPlainObject, joinPath, number, object, oneOf, optional, parseShape, record,
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

const hookShape = {
  script: string(),
  exec: optional(string()),
  timeout: withDefault(number({ min: 1 }), 120),
  onFailure: withDefault(oneOf(["warn", "endLease", "exit"]), "warn"),
};

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
  hooks: optional(object({ beforeLease: optional(object(hookShape)), afterLease: optional(object(hookShape)) })),
  exitOnLeaseEnd: withDefault(boolean(), false),
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

export function parseExporterConfig(value: unknown, file: string): ExporterConfig {
  try {
    if (value === null || value === undefined) throw new SchemaError("", "the file is empty; expected an ExporterConfig mapping");
    const top = parseTop(value);
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
