/** The controller connection of client commands: `--client`, `--client-config`, env, or the current client. */
import { UserError } from "../common/errors.ts";
import type { ControllerClients } from "../client/controller-client.ts";

export const CLIENT_ARGS = {
  client: { type: "string", description: "use the client config with this alias", valueHint: "ALIAS" },
  clientConfig: { type: "string", description: "use this client config file", valueHint: "FILE" },
} as const;

export async function controllerFromArgs(args: { client?: string; clientConfig?: string }): Promise<ControllerClients & { config: import("../common/client-config.ts").ClientConfig }> {
  const [{ resolveClientConfig }, { connectController }] = await Promise.all([
    import("../common/client-config.ts"),
    import("../client/controller-client.ts"),
  ]);
  const config = resolveClientConfig({ client: args.client, clientConfig: args.clientConfig }, process.env);
  if (!config.endpoint) throw new UserError(`${config.file ?? "the client config"}: endpoint: missing; expected the controller's HOST:PORT`, 2);
  if (!config.token) throw new UserError(`${config.file ?? "the client config"}: token: missing`, 2);
  const clients = connectController({
    endpoint: config.endpoint,
    token: config.token,
    namespace: config.metadata.namespace ?? "default",
    name: config.metadata.name ?? "",
    tls: config.tls,
  });
  return { ...clients, config };
}

/** `k=v` flags (repeatable) into a map, naming the flag in errors. */
export function keyValues(value: unknown, flag: string): Record<string, string> {
  const items = value === undefined ? [] : Array.isArray(value) ? value : [value];
  const out: Record<string, string> = {};
  for (const item of items.map(String)) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UserError(`'${flag}' takes KEY=VALUE: got '${item}'`, 2);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `-l` may be given several times; the selectors are joined, as upstream. */
export function selectorArg(value: unknown): string | undefined {
  const items = value === undefined ? [] : Array.isArray(value) ? value : [value];
  const joined = items.map(String).filter(Boolean).join(",");
  return joined || undefined;
}

export function listArg(value: unknown): string[] {
  const items = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return items.map(String);
}
