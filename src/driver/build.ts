/**
 * Builds a fresh driver tree from an exporter config's `export:` section. Every
 * mistake (unknown type, bad config key, dangling ref) is a ConfigError naming the
 * file and key path; nothing fails later with a half-built tree.
 */
import { ConfigError } from "../common/errors.ts";
import type { ExportNode, ExporterConfig } from "../common/exporter-config.ts";
import { joinPath, parseShape, SchemaError } from "../common/schema.ts";
import type { DriverCatalog } from "./catalog.ts";
import { Composite, Proxy } from "./composite.ts";
import type { Driver } from "./driver.ts";
import { LOG_LEVELS, type LogLevel } from "../common/log.ts";

export function buildDriverTree(config: Pick<ExporterConfig, "file" | "export" | "description">, catalog: DriverCatalog): Driver {
  const root = new Composite({});
  root.description = config.description;
  const proxies: { node: ExportNode & { kind: "ref" }; parent: Driver; name: string }[] = [];
  root.children = buildChildren(config.export, root, config.file, catalog, proxies);
  for (const p of proxies) {
    const target = resolveRef(root, p.node.ref);
    if (!target) throw new ConfigError(config.file, joinPath(p.node.keyPath, "ref"), `no driver at '${p.node.ref}' (a dotted path of export names, such as 'power' or 'board.console')`);
    if (target === p.parent || isAncestor(target, p.parent)) {
      throw new ConfigError(config.file, joinPath(p.node.keyPath, "ref"), `'${p.node.ref}' contains this entry; a ref cannot point at its own parent`);
    }
    p.parent.children[p.name] = target;
  }
  return root;
}

function buildChildren(
  nodes: Record<string, ExportNode>,
  parent: Driver,
  file: string,
  catalog: DriverCatalog,
  proxies: { node: ExportNode & { kind: "ref" }; parent: Driver; name: string }[],
): Record<string, Driver> {
  const out: Record<string, Driver> = {};
  for (const [name, node] of Object.entries(nodes)) {
    if (node.kind === "ref") {
      proxies.push({ node, parent, name });
      out[name] = new Proxy({ ref: node.ref });
      continue;
    }
    let driver: Driver;
    if (node.kind === "composite") {
      driver = new Composite({});
    } else {
      const entry = catalog.resolve(node.type);
      if (!entry) {
        const hints = catalog.suggest(node.type);
        const hint = hints.length ? `; did you mean ${hints.map((h) => `'${h}'`).join(" or ")}?` : "; 'jmp driver list' shows the known types";
        throw new ConfigError(file, joinPath(node.keyPath, "type"), `unknown driver type '${node.type}'${hint}`);
      }
      const configPath = joinPath(node.keyPath, "config");
      try {
        // Every upstream driver takes `log_level`; accept it for ours too.
        const { log_level: level, ...rest } = node.config;
        const own = "log_level" in entry.driver.configShape;
        driver = new entry.driver(parseShape(entry.driver.configShape, own ? node.config : rest, configPath));
        if (!own && level !== undefined) driver.logLevel = parseLogLevel(level, joinPath(configPath, "log_level"));
      } catch (e) {
        if (e instanceof SchemaError) throw new ConfigError(file, e.keyPath, e.problem);
        if (e instanceof ConfigError) throw e;
        throw new ConfigError(file, configPath, (e as Error).message);
      }
    }
    driver.description = node.description ?? driver.description;
    driver.methodsDescription = { ...driver.methodsDescription, ...node.methodsDescription };
    const configured = buildChildren(node.children, driver, file, catalog, proxies);
    driver.children = { ...driver.children, ...configured };
    out[name] = driver;
  }
  return out;
}

function resolveRef(root: Driver, ref: string): Driver | undefined {
  let d: Driver | undefined = root;
  for (const part of ref.split(".")) {
    d = d?.children[part];
    if (d instanceof Proxy) return undefined;
  }
  return d === root ? undefined : d;
}

function isAncestor(candidate: Driver, of: Driver): boolean {
  const stack = Object.values(candidate.children);
  const seen = new Set<Driver>();
  while (stack.length) {
    const d = stack.pop()!;
    if (d === of) return true;
    if (seen.has(d)) continue;
    seen.add(d);
    stack.push(...Object.values(d.children));
  }
  return false;
}

const PYTHON_LEVELS: Record<string, LogLevel> = { DEBUG: "debug", INFO: "info", WARNING: "warn", WARN: "warn", ERROR: "error", CRITICAL: "error" };

function parseLogLevel(value: unknown, keyPath: string): LogLevel {
  const level = typeof value === "string" ? PYTHON_LEVELS[value.toUpperCase()] : undefined;
  if (!level || !LOG_LEVELS.includes(level)) {
    throw new SchemaError(keyPath, `expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got ${JSON.stringify(value)}`);
  }
  return level;
}
