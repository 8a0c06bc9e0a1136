/** AIP resource names, as upstream: `namespaces/{ns}/{leases|exporters|clients}/{name}`. */
import { Code, ConnectError } from "@connectrpc/connect";

export type Collection = "leases" | "exporters" | "clients";

export function resourceName(namespace: string, collection: Collection, name: string): string {
  return `namespaces/${namespace}/${collection}/${name}`;
}

/** Parses a full name, or takes a plain name in the caller's namespace. */
export function parseResourceName(text: string, collection: Collection, defaultNamespace: string): { namespace: string; name: string } {
  const m = /^namespaces\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(text);
  if (m) {
    if (m[2] !== collection) throw new ConnectError(`'${text}' is not a ${collection.slice(0, -1)} name`, Code.InvalidArgument);
    return { namespace: m[1]!, name: m[3]! };
  }
  if (!text || text.includes("/")) {
    throw new ConnectError(`'${text}' is not a ${collection.slice(0, -1)} name (expected namespaces/NS/${collection}/NAME)`, Code.InvalidArgument);
  }
  return { namespace: defaultNamespace, name: text };
}

export function parseParent(text: string, defaultNamespace: string): string {
  if (!text) return defaultNamespace;
  const m = /^namespaces\/([^/]+)$/.exec(text);
  if (!m) throw new ConnectError(`'${text}' is not a parent (expected namespaces/NS)`, Code.InvalidArgument);
  return m[1]!;
}
