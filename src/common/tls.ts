/**
 * Client-side TLS for connections to a controller or router, from upstream's config
 * block `tls: {ca, insecure}`. `ca` is base64 of a PEM bundle in upstream's files; a
 * plain PEM is accepted too. `insecure` keeps TLS on but takes whatever chain the
 * server presents, as upstream does.
 */
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { UserError } from "./errors.ts";
import { SchemaError } from "./schema.ts";

export interface TlsSettings {
  ca?: string;
  insecure?: boolean;
}

const DEFAULT_PORT = 443;

/** `host:port`, `[v6]:port` or a bare host (port 443, as upstream), with an optional `scheme://` or `dns:///` prefix. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const rest = endpoint.trim().replace(/^[a-z][a-z0-9+.-]*:\/\/\/?/i, "");
  const m = /^(?:\[([^\]]+)\]|([^:/[\]]+))(?::(\d+))?$/.exec(rest) ?? (isIP(rest) === 6 ? [rest, rest] : null);
  const host = m?.[1] ?? m?.[2];
  const port = m?.[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError(`endpoint '${endpoint}' is not HOST:PORT`, 2);
  }
  return { host, port };
}

import { insecureFromEnv } from "./insecure-env.ts";
export { insecureFromEnv };

/** The PEM text of a `tls.ca` value; a SchemaError at `keyPath` when it is neither form, so config loaders can name their file. */
export function caPem(ca: string, keyPath = "tls.ca"): string {
  const text = ca.trim();
  const pem = text.startsWith("-----BEGIN") ? text : Buffer.from(text, "base64").toString("utf8").trim();
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new SchemaError(keyPath, "expected a PEM certificate or base64 of one");
  try {
    new X509Certificate(pem);
  } catch (e) {
    throw new SchemaError(keyPath, `the certificate cannot be read: ${(e as Error).message}`);
  }
  return `${pem}\n`;
}

/** Options for `tls.connect` to `endpoint`, speaking HTTP/2. */
export function tlsConnectOptions(
  endpoint: string,
  tls: TlsSettings = {},
  env: NodeJS.ProcessEnv = process.env,
): ConnectionOptions & { host: string; port: number } {
  const { host, port } = parseEndpoint(endpoint);
  const insecure = tls.insecure === true || insecureFromEnv(env);
  let ca: string | undefined;
  try {
    ca = !insecure && tls.ca ? caPem(tls.ca) : undefined;
  } catch (e) {
    throw e instanceof SchemaError ? new UserError(e.message, 2) : e;
  }
  return {
    host,
    port,
    ALPNProtocols: ["h2"],
    // SNI carries names only; for an address the certificate's IP SANs are checked.
    servername: isIP(host) ? undefined : host,
    rejectUnauthorized: !insecure,
    ca,
  };
}
