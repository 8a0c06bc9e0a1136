/**
 * Upstream's ClientConfig YAML (`clients/<alias>.yaml` under the config home), the user
 * config naming the current client (`config.yaml`), client configs from the environment,
 * and our AdminConfig (the controller's admin credential, `<data-dir>/admin.yaml`).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { decodeJwt } from "jose";
import { ConfigError, UserError } from "./errors.ts";
import { checkAlias, configHome } from "./paths.ts";
import {
  boolean, either, isPlainObject, list, number, object, oneOf, optional, parseShape, record, SchemaError, string,
  withDefault,
} from "./schema.ts";
import { caPem, parseEndpoint } from "./tls.ts";
import { readYamlFile, writeYamlFile } from "./yaml-file.ts";

export const API_VERSION = "jumpstarter.dev/v1alpha1";

const metadataShape = { namespace: optional(string()), name: optional(string()) };
const tlsShape = { ca: optional(string()), insecure: withDefault(boolean(), false) };
const NO_METADATA = { namespace: undefined, name: undefined };
const NO_TLS = { ca: undefined, insecure: false };
const LEASE_DEFAULTS = { acquisition_timeout: 7200, dial_timeout: 60, retry_timeout: 300 };

const clientShape = {
  apiVersion: withDefault(oneOf([API_VERSION]), API_VERSION),
  kind: withDefault(oneOf(["ClientConfig"]), "ClientConfig"),
  metadata: withDefault(object(metadataShape), NO_METADATA),
  endpoint: optional(string({ nonEmpty: true })),
  token: optional(string()),
  refresh_token: optional(string()),
  tls: withDefault(object(tlsShape), NO_TLS),
  grpcOptions: optional(record(either(string(), number()))),
  // Upstream also takes a comma-separated string here (the form JMP_DRIVERS_ALLOW has).
  drivers: withDefault(object({ allow: withDefault(either(list(string()), string()), []), unsafe: withDefault(boolean(), false) }), {
    allow: [],
    unsafe: false,
  }),
  shell: withDefault(object({ use_profiles: withDefault(boolean(), false) }), { use_profiles: false }),
  leases: withDefault(object({
    acquisition_timeout: withDefault(number({ integer: true, min: 5 }), LEASE_DEFAULTS.acquisition_timeout),
    dial_timeout: withDefault(number({ min: 5 }), LEASE_DEFAULTS.dial_timeout),
    retry_timeout: withDefault(number({ min: 0 }), LEASE_DEFAULTS.retry_timeout),
  }), LEASE_DEFAULTS),
};

export interface ClientConfig {
  apiVersion: string;
  kind: "ClientConfig";
  metadata: { namespace?: string; name?: string };
  endpoint?: string;
  token?: string;
  refresh_token?: string;
  tls: { ca?: string; insecure: boolean };
  grpcOptions?: Record<string, string | number>;
  drivers: { allow: string[]; unsafe: boolean };
  shell: { use_profiles: boolean };
  leases: { acquisition_timeout: number; dial_timeout: number; retry_timeout: number };
  /** Where it came from: a file, or "<environment>". */
  file: string;
  alias?: string;
}

/** What `writeClientConfig` takes: the parts a new config needs; the rest gets upstream's defaults. */
export type ClientConfigInput = Partial<Omit<ClientConfig, "file" | "alias" | "apiVersion" | "kind">>;

const ENVIRONMENT = "<environment>";

function configError<T>(file: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof SchemaError) throw new ConfigError(file, e.keyPath, e.problem);
    throw e;
  }
}

/** Upstream writes `ca: ""` for "no CA"; a CA that is there must be readable, and is kept as written. */
function checkedTls(t: { ca?: string; insecure: boolean }): { ca?: string; insecure: boolean } {
  if (t.ca) caPem(t.ca);
  return { ca: t.ca || undefined, insecure: t.insecure };
}

function splitAllow(allow: string[] | string): string[] {
  return (Array.isArray(allow) ? allow : allow.split(",")).map((s) => s.trim()).filter(Boolean);
}

export function parseClientConfig(value: unknown, file: string): ClientConfig {
  return configError(file, () => {
    if (value === null || value === undefined) throw new SchemaError("", "the file is empty; expected a ClientConfig mapping");
    const c = parseShape(clientShape, value);
    const allow = splitAllow(c.drivers.allow);
    return {
      ...c,
      tls: checkedTls(c.tls),
      drivers: { allow, unsafe: c.drivers.unsafe || allow.includes("UNSAFE") },
      file,
    };
  });
}

export function clientConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(configHome(env), "clients");
}

export function clientConfigFile(alias: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(clientConfigDir(env), `${checkAlias(alias, "client alias")}.yaml`);
}

export function loadClientConfigFile(file: string): ClientConfig {
  return { ...parseClientConfig(readYamlFile(file), file), alias: basename(file).replace(/\.ya?ml$/, "") };
}

export function loadClientConfig(alias: string, env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const file = clientConfigFile(alias, env);
  if (!existsSync(file)) {
    const known = listAliases(env);
    const hint = known.length ? `known clients: ${known.join(", ")}` : "no client configs exist yet";
    throw new UserError(`no client config named '${alias}' (looked for ${file}; ${hint}); create one with 'jmp config client create ${alias}'`, 2);
  }
  return { ...loadClientConfigFile(file), alias };
}

/** JMP_ENDPOINT + JMP_TOKEN (+ JMP_NAMESPACE, JMP_NAME, JMP_DRIVERS_ALLOW); undefined when neither is set. */
export function clientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ClientConfig | undefined {
  const { JMP_ENDPOINT: endpoint, JMP_TOKEN: token } = env;
  if (!endpoint && !token) return undefined;
  if (!endpoint || !token) {
    const [set, unset] = endpoint ? ["JMP_ENDPOINT", "JMP_TOKEN"] : ["JMP_TOKEN", "JMP_ENDPOINT"];
    throw new UserError(`${set} is set but ${unset} is not: set both to use a client config from the environment`, 2);
  }
  return parseClientConfig({
    metadata: { namespace: env.JMP_NAMESPACE || undefined, name: env.JMP_NAME || undefined },
    endpoint,
    token,
    drivers: env.JMP_DRIVERS_ALLOW ? { allow: env.JMP_DRIVERS_ALLOW } : undefined,
  }, ENVIRONMENT);
}

/**
 * Fills a missing namespace or name from the token's subject (`client:<ns>:<name>:<uid>`),
 * so JMP_ENDPOINT + JMP_TOKEN alone are enough. The token is only read here, not trusted:
 * the controller checks it.
 */
function withNamesFromToken(cfg: ClientConfig): ClientConfig {
  if ((cfg.metadata.namespace && cfg.metadata.name) || !cfg.token) return cfg;
  let sub: string | undefined;
  try {
    sub = decodeJwt(cfg.token).sub;
  } catch {
    return cfg;
  }
  const m = /^client:([^:]+):([^:]+):[^:]+$/.exec(sub ?? "");
  if (!m) return cfg;
  return { ...cfg, metadata: { namespace: cfg.metadata.namespace ?? m[1], name: cfg.metadata.name ?? m[2] } };
}

/**
 * The client config a command uses, by upstream's precedence: `--client` or
 * `--client-config`, else JMP_ENDPOINT + JMP_TOKEN, else the current client. Its
 * endpoint and token are checked to be present.
 */
export function resolveClientConfig(flags: { client?: string; clientConfig?: string }, env: NodeJS.ProcessEnv = process.env): ClientConfig {
  if (flags.client && flags.clientConfig) throw new UserError("give either --client or --client-config, not both", 2);
  let cfg: ClientConfig | undefined;
  if (flags.client) cfg = loadClientConfig(flags.client, env);
  else if (flags.clientConfig) cfg = loadClientConfigFile(flags.clientConfig);
  else cfg = clientConfigFromEnv(env);
  if (!cfg) {
    let current = currentClient(env);
    if (current === undefined) {
      // One config copied in by hand, and none picked: that one is meant.
      const known = listAliases(env);
      if (known.length === 1) current = known[0]!;
      else {
        throw new UserError(
          "no client config: pass --client ALIAS or --client-config FILE, set JMP_ENDPOINT and JMP_TOKEN, " +
            (known.length
              ? `or pick the current client with 'jmp config client use ALIAS' (there are ${known.join(", ")})`
              : "or save one as clients/ALIAS.yaml in the config directory (your admin can make one: 'jmp admin create client NAME')"),
          2,
        );
      }
    }
    if (!existsSync(clientConfigFile(current, env))) {
      throw new UserError(
        `the current client '${current}' has no config file (${clientConfigFile(current, env)}); ` +
          "pick another with 'jmp config client use ALIAS'",
        2,
      );
    }
    cfg = loadClientConfig(current, env);
  }
  if (!cfg.endpoint) throw new ConfigError(cfg.file, "endpoint", "missing; expected the controller's HOST:PORT");
  checkEndpoint(cfg.endpoint, cfg.file);
  if (!cfg.token) throw new ConfigError(cfg.file, "token", "missing; ask your admin for this client's token");
  return withNamesFromToken(cfg);
}

/** The YAML document upstream writes for a client config: every section, defaults filled in, nothing undefined. */
export function clientConfigDocument(cfg: ClientConfigInput): Record<string, unknown> {
  return JSON.parse(JSON.stringify(clientDocument(cfg)));
}

function clientDocument(cfg: ClientConfigInput): Record<string, unknown> {
  const leases = { ...LEASE_DEFAULTS, ...cfg.leases };
  const defaultLeases = Object.entries(LEASE_DEFAULTS).every(([k, v]) => leases[k as keyof typeof leases] === v);
  return {
    apiVersion: API_VERSION,
    kind: "ClientConfig",
    metadata: cfg.metadata ?? {},
    endpoint: cfg.endpoint,
    tls: { ca: cfg.tls?.ca ?? "", insecure: cfg.tls?.insecure ?? false },
    token: cfg.token,
    refresh_token: cfg.refresh_token,
    grpcOptions: cfg.grpcOptions ?? {},
    drivers: { allow: cfg.drivers?.allow ?? [], unsafe: cfg.drivers?.unsafe ?? false },
    shell: { use_profiles: cfg.shell?.use_profiles ?? false },
    // Upstream leaves default lease settings out so that older clients can read the file.
    leases: defaultLeases ? undefined : leases,
  };
}

/** Writes `clients/<alias>.yaml` (atomically, mode 0600); the first client written becomes the current one. */
export function writeClientConfig(alias: string, cfg: ClientConfigInput, env: NodeJS.ProcessEnv = process.env): string {
  const file = clientConfigFile(alias, env);
  const doc = clientConfigDocument(cfg);
  parseClientConfig(doc, file);
  writeYamlFile(file, doc);
  const current = currentClient(env);
  if (current === undefined || !existsSync(clientConfigFile(current, env))) setCurrentClient(alias, env);
  return file;
}

export interface ClientConfigEntry {
  alias: string;
  file: string;
  endpoint?: string;
  current: boolean;
  /** Why the file could not be read; it is still listed so that it can be fixed or deleted. */
  error?: string;
}

function listAliases(env: NodeJS.ProcessEnv): string[] {
  let names: string[];
  try {
    names = readdirSync(clientConfigDir(env));
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith(".yaml")).map((n) => n.slice(0, -5)).sort();
}

export function listClientConfigs(env: NodeJS.ProcessEnv = process.env): ClientConfigEntry[] {
  const current = currentClient(env);
  return listAliases(env).map((alias) => {
    const file = clientConfigFile(alias, env);
    const entry: ClientConfigEntry = { alias, file, current: alias === current };
    try {
      entry.endpoint = loadClientConfigFile(file).endpoint;
    } catch (e) {
      entry.error = (e as Error).message;
    }
    return entry;
  });
}

export function useClientConfig(alias: string, env: NodeJS.ProcessEnv = process.env): string {
  const file = loadClientConfig(alias, env).file;
  setCurrentClient(alias, env);
  return file;
}

export function deleteClientConfig(alias: string, env: NodeJS.ProcessEnv = process.env): string {
  const file = clientConfigFile(alias, env);
  if (!existsSync(file)) throw new UserError(`no client config named '${alias}' (looked for ${file})`, 2);
  rmSync(file);
  if (currentClient(env) === alias) setCurrentClient(undefined, env);
  return file;
}

// The user config (config.yaml). Keys other than current-client are kept as they are:
// upstream may add some, and this file is shared with upstream's jmp.

export function userConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configHome(env), "config.yaml");
}

function readUserConfig(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const file = userConfigFile(env);
  if (!existsSync(file)) return {};
  const doc = readYamlFile(file) ?? {};
  return configError(file, () => {
    if (!isPlainObject(doc)) throw new SchemaError("", "expected a UserConfig mapping");
    if (doc.kind !== undefined && doc.kind !== "UserConfig") {
      throw new SchemaError("kind", `expected "UserConfig", got ${JSON.stringify(doc.kind)}`);
    }
    const config = doc.config ?? {};
    if (!isPlainObject(config)) throw new SchemaError("config", "expected a mapping");
    optional(string()).parse(config["current-client"], "config.current-client");
    return doc;
  });
}

/** The alias `jmp config client use` picked, if any. */
export function currentClient(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const config = readUserConfig(env).config as Record<string, unknown> | undefined;
  return (config?.["current-client"] as string | null | undefined) || undefined;
}

function setCurrentClient(alias: string | undefined, env: NodeJS.ProcessEnv): void {
  const doc = readUserConfig(env);
  const config = isPlainObject(doc.config) ? doc.config : {};
  writeYamlFile(userConfigFile(env), {
    ...doc,
    apiVersion: doc.apiVersion ?? API_VERSION,
    kind: "UserConfig",
    config: { ...config, "current-client": alias ?? null },
  });
}

// The admin credential: which controller, and a token of kind Admin.

const adminShape = {
  apiVersion: withDefault(oneOf([API_VERSION]), API_VERSION),
  kind: oneOf(["AdminConfig"]),
  metadata: withDefault(object(metadataShape), NO_METADATA),
  endpoint: string({ nonEmpty: true }),
  token: string({ nonEmpty: true }),
  tls: withDefault(object(tlsShape), NO_TLS),
};

export interface AdminConfig {
  metadata: { namespace?: string; name?: string };
  endpoint: string;
  token: string;
  tls: { ca?: string; insecure: boolean };
  file: string;
}

export const ADMIN_CONFIG_FILE = "admin.yaml";

export function parseAdminConfig(value: unknown, file: string): AdminConfig {
  return configError(file, () => {
    if (value === null || value === undefined) throw new SchemaError("", "the file is empty; expected an AdminConfig mapping");
    const { metadata, endpoint, token, tls } = parseShape(adminShape, value);
    checkEndpoint(endpoint, file);
    return { metadata, endpoint, token, tls: checkedTls(tls), file };
  });
}

/** `--admin-config FILE`, else JMP_ADMIN_CONFIG, else `<data-dir>/admin.yaml` on the controller's machine. */
export function loadAdminConfig(flags: { adminConfig?: string }, env: NodeJS.ProcessEnv = process.env, dataDir?: string): AdminConfig {
  const file = flags.adminConfig || env.JMP_ADMIN_CONFIG || (dataDir ? join(dataDir, ADMIN_CONFIG_FILE) : undefined);
  if (!file) {
    throw new UserError(
      "no admin credential: pass --admin-config FILE or set JMP_ADMIN_CONFIG " +
        `(the controller writes it to ${ADMIN_CONFIG_FILE} in its data dir), or run this on the controller's machine with --data-dir`,
      2,
    );
  }
  return parseAdminConfig(readYamlFile(file), file);
}

/** Writes an admin credential (atomically, mode 0600). */
export function writeAdminConfig(file: string, cfg: Omit<AdminConfig, "file" | "metadata" | "tls"> & Partial<Pick<AdminConfig, "metadata" | "tls">>): void {
  const doc = JSON.parse(JSON.stringify({
    apiVersion: API_VERSION,
    kind: "AdminConfig",
    metadata: cfg.metadata ?? {},
    endpoint: cfg.endpoint,
    token: cfg.token,
    tls: { ca: cfg.tls?.ca ?? "", insecure: cfg.tls?.insecure ?? false },
  }));
  parseAdminConfig(doc, file);
  writeYamlFile(file, doc);
}

/** An endpoint that is not HOST:PORT is the file's mistake: say so at load, naming it, not at the first connection. */
function checkEndpoint(endpoint: string, file: string): void {
  try {
    parseEndpoint(endpoint);
  } catch {
    throw new ConfigError(file, "endpoint", `expected the controller's HOST:PORT, got '${endpoint}'`);
  }
}
