/**
 * Client commands' side of the one way into the controller (src/client/controller.ts):
 * `--client` / `--client-config` into a connection, and the flag helpers they share.
 */
import { UserError } from "../common/errors.ts";
import type { ClientConfig } from "../common/client-config.ts";
import type { ControllerConnection } from "../client/controller.ts";

export const CLIENT_ARGS = {
  client: { type: "string", description: "use the client config with this alias", valueHint: "ALIAS" },
  clientConfig: { type: "string", description: "use this client config file", valueHint: "FILE" },
} as const;

export async function controllerFromArgs(args: { client?: string; clientConfig?: string }): Promise<ControllerConnection & { config: ClientConfig }> {
  const { openController } = await import("../client/controller.ts");
  return openController({ client: args.client, clientConfig: args.clientConfig });
}

/** Upstream's own driver client packages: what a new client config allows unless told otherwise. */
const DEFAULT_ALLOW = ["jumpstarter_driver_*"];

/** `--allow` and `--unsafe` of the commands that write a ClientConfig, as upstream's. */
export const DRIVERS_ARGS = {
  allow: {
    type: "string",
    alias: "a",
    description: "driver client packages it may load, comma-separated globs (default: jumpstarter_driver_*, upstream's own; '' for none)",
    valueHint: "GLOB,…",
  },
  unsafe: { type: "boolean", description: "let it load every driver client package (UNSAFE)" },
} as const;

/** The `drivers:` section upstream's client reads: `allow` globs and `unsafe`. */
export function driversFromArgs(args: { allow?: string; unsafe?: boolean }): { allow: string[]; unsafe: boolean } {
  if (args.unsafe && args.allow) throw new UserError("give --allow or --unsafe, not both (--unsafe allows every driver client)", 2);
  const allow = args.allow === undefined ? DEFAULT_ALLOW : args.allow.split(",").map((a) => a.trim()).filter(Boolean);
  return { allow: args.unsafe ? [] : allow, unsafe: Boolean(args.unsafe) };
}

/** `k=v` flags (repeatable) into a map, naming the flag in errors. */
export function keyValues(value: unknown, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of listArg(value)) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UserError(`'${flag}' takes KEY=VALUE: got '${item}'`, 2);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `-l` may be given several times; the selectors are joined, as upstream. */
export function selectorArg(value: unknown): string | undefined {
  const joined = listArg(value).filter(Boolean).join(",");
  return joined || undefined;
}

/** Every value of a repeatable flag, in order. */
export function listArg(value: unknown): string[] {
  const items = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return items.map(String);
}
