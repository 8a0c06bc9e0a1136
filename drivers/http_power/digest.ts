/**
 * HTTP Digest access authentication (RFC 7616), the client side: what Shelly Gen2+
 * devices ask for (SHA-256) and what older web-managed switches use (MD5). Only
 * `qop=auth` and the legacy no-qop form: nobody's power switch asks for auth-int.
 */
import { createHash, randomBytes } from "node:crypto";

export interface DigestChallenge {
  realm: string;
  nonce: string;
  /** As the server spelt it: MD5, MD5-sess, SHA-256, SHA-256-sess (default MD5). */
  algorithm: string;
  /** The qop options offered, e.g. ["auth"]; empty for RFC 2069 servers. */
  qop: string[];
  opaque?: string;
}

const HASHES: Record<string, string> = { "MD5": "md5", "SHA-256": "sha256" };

/**
 * The Digest challenge of a `WWW-Authenticate` header, or undefined when it offers
 * none (e.g. only Basic). Throws when the challenge asks for what we cannot answer.
 */
export function parseDigestChallenge(header: string | null): DigestChallenge | undefined {
  if (!header) return undefined;
  const start = /(?:^|,)\s*Digest\s+/i.exec(header);
  if (!start) return undefined;
  const params: Record<string, string> = {};
  const pair = /\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/y;
  pair.lastIndex = start.index + start[0].length;
  for (let m = pair.exec(header); m; m = pair.exec(header)) {
    const key = m[1]!.toLowerCase();
    // A later challenge (", Basic realm=...") must not overwrite the Digest one's realm.
    if (!(key in params)) params[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!;
  }
  if (params.realm === undefined || params.nonce === undefined) {
    throw new Error(`the Digest challenge has no ${params.realm === undefined ? "realm" : "nonce"}: ${header}`);
  }
  const algorithm = params.algorithm ?? "MD5";
  if (!HASHES[algorithm.replace(/-sess$/i, "").toUpperCase()]) throw new Error(`unsupported Digest algorithm ${algorithm}`);
  const qop = (params.qop ?? "").split(",").map((q) => q.trim()).filter(Boolean);
  if (qop.length && !qop.includes("auth")) throw new Error(`unsupported Digest qop ${params.qop} (only "auth" is)`);
  return { realm: params.realm, nonce: params.nonce, algorithm, qop, opaque: params.opaque };
}

export interface DigestCredentials {
  user: string;
  password: string;
  method: string;
  /** The request target as sent: path and query. */
  uri: string;
  /** Fixed only by tests; random otherwise. */
  cnonce?: string;
  nc?: number;
}

/** The `Authorization` header that answers a challenge for one request. */
export function digestAuthorization(ch: DigestChallenge, cred: DigestCredentials): string {
  const base = ch.algorithm.replace(/-sess$/i, "").toUpperCase();
  const session = /-sess$/i.test(ch.algorithm);
  const h = (s: string) => createHash(HASHES[base]!).update(s, "utf8").digest("hex");
  const cnonce = cred.cnonce ?? randomBytes(16).toString("hex");
  const nc = (cred.nc ?? 1).toString(16).padStart(8, "0");
  let ha1 = h(`${cred.user}:${ch.realm}:${cred.password}`);
  if (session) ha1 = h(`${ha1}:${ch.nonce}:${cnonce}`);
  const ha2 = h(`${cred.method}:${cred.uri}`);
  const withQop = ch.qop.length > 0;
  const response = withQop ? h(`${ha1}:${ch.nonce}:${nc}:${cnonce}:auth:${ha2}`) : h(`${ha1}:${ch.nonce}:${ha2}`);
  const q = (s: string) => `"${s.replace(/(["\\])/g, "\\$1")}"`;
  const parts = [
    `username=${q(cred.user)}`, `realm=${q(ch.realm)}`, `uri=${q(cred.uri)}`, `algorithm=${ch.algorithm}`,
    `nonce=${q(ch.nonce)}`,
    ...(withQop ? [`nc=${nc}`, `cnonce=${q(cnonce)}`, "qop=auth"] : []),
    `response=${q(response)}`,
    ...(ch.opaque !== undefined ? [`opaque=${q(ch.opaque)}`] : []),
  ];
  return `Digest ${parts.join(", ")}`;
}
