/**
 * Tokens and the check every controller call goes through.
 *
 * Principal tokens are ES256 JWTs shaped like upstream's internal ones (issuer, audience,
 * `sub` = `client:<ns>:<name>:<uid>`), plus `jti` = the principal's current token id. The
 * interceptor looks the principal up on every call, so deleting it (new uid next time) or
 * rotating its token (new token id) revokes the old token at once; upstream cannot.
 *
 * Router tokens are HS256 JWTs with upstream's router issuer and audience, signed with the
 * shared router key, so a router in another process (ours, or upstream's with ROUTER_KEY
 * set to the key file's text) can check them.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues, type Interceptor } from "@connectrpc/connect";
import {
  calculateJwkThumbprint, decodeProtectedHeader, errors, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8,
  jwtVerify, SignJWT, type CryptoKey, type JWTPayload,
} from "jose";
import { UserError } from "../common/errors.ts";

export type PrincipalKind = "Client" | "Exporter" | "Admin";
export const PRINCIPAL_KINDS: readonly PrincipalKind[] = ["Client", "Exporter", "Admin"];

export interface Principal {
  kind: PrincipalKind;
  namespace: string;
  name: string;
  /** Changes when the principal is deleted and created again. */
  uid: string;
  /** Changes when the principal's token is rotated. */
  tokenId: string;
}

export interface TokenClaims extends Principal {
  issuedAt: Date;
  expiresAt: Date;
}

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

// Upstream's internal issuer and audience: a Kubernetes-backed controller holding the
// same key can accept tokens upstream issued, and tools that read tokens see the usual shape.
export const TOKEN_ISSUER = "https://localhost:8085";
export const TOKEN_AUDIENCE = "jumpstarter";
export const TOKEN_LIFETIME_MS = 365 * 86_400_000;
export const ROUTER_TOKEN_ISSUER = "https://jumpstarter.dev/stream";
export const ROUTER_TOKEN_AUDIENCE = "https://jumpstarter.dev/router";
export const ROUTER_TOKEN_TTL_MS = 120_000;

export const AUTH_HEADER = "authorization";
export const KIND_HEADER = "jumpstarter-kind";
export const NAMESPACE_HEADER = "jumpstarter-namespace";
export const NAME_HEADER = "jumpstarter-name";

export type TokenFailure = "malformed" | "bad-signature" | "expired" | "wrong-audience" | "wrong-issuer";

export class TokenError extends Error {
  override name = "TokenError";
  constructor(
    readonly reason: TokenFailure,
    message: string,
    /** Set when `reason` is "expired". */
    readonly expiredAt?: Date,
  ) {
    super(message);
  }
}

/** ISO-8601 to the second: what people read in error messages. */
function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function subjectOf(p: Pick<Principal, "kind" | "namespace" | "name" | "uid">): string {
  for (const [what, v] of [["namespace", p.namespace], ["name", p.name], ["uid", p.uid]] as const) {
    if (!v || v.includes(":")) throw new RangeError(`a token ${what} must be non-empty and hold no ':' (got '${v}')`);
  }
  return `${p.kind.toLowerCase()}:${p.namespace}:${p.name}:${p.uid}`;
}

export function parseSubject(sub: string): Omit<Principal, "tokenId"> | undefined {
  const m = /^(client|exporter|admin):([^:]+):([^:]+):([^:]+)$/.exec(sub);
  if (!m) return undefined;
  const kind = PRINCIPAL_KINDS.find((k) => k.toLowerCase() === m[1])!;
  return { kind, namespace: m[2]!, name: m[3]!, uid: m[4]! };
}

/** Maps jose's failures to ours; messages never contain the token. */
function tokenError(e: unknown, what: string, badSignature: string): TokenError {
  if (e instanceof errors.JWTExpired) {
    const exp = typeof e.payload.exp === "number" ? new Date(e.payload.exp * 1000) : new Date(0);
    return new TokenError("expired", `${what} expired at ${isoSeconds(exp)}`, exp);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError("bad-signature", `${what} ${badSignature}`);
  }
  if (e instanceof errors.JWTClaimValidationFailed && e.claim === "aud") {
    return new TokenError("wrong-audience", `${what} is meant for another service (audience ${JSON.stringify(e.payload.aud)})`);
  }
  if (e instanceof errors.JWTClaimValidationFailed && e.claim === "iss") {
    return new TokenError("wrong-issuer", `${what} comes from another issuer (${JSON.stringify(e.payload.iss)})`);
  }
  if (e instanceof errors.JOSEError) return new TokenError("malformed", `${what} is malformed: ${e.message}`);
  throw e;
}

/** A fresh P-256 signing key as PKCS#8 PEM, for `signing-key.pem`. */
export async function newSigningKeyPem(): Promise<string> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  return `${await exportPKCS8(privateKey)}\n`;
}

/**
 * How many verified tokens `TokenAuthority.verify` remembers: one per principal is
 * the usual case, so this covers a lab of thousands of exporters and clients.
 */
const VERIFIED_TOKENS = 20_000;

/** Issues and verifies principal tokens with the controller's signing key. */
export class TokenAuthority {
  /**
   * Tokens whose signature and claims checked out, by their text: every controller
   * call presents its principal's token again, and the ES256 check was about a tenth
   * of the controller's CPU under lease churn. A token is immutable, so only the
   * clock can change the answer: an entry is used until the token's expiry only.
   * Revocation is not cached here; the interceptor looks the principal up each call.
   */
  private readonly verified = new Map<string, TokenClaims>();

  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    /** RFC 7638 thumbprint of the public key, sent as `kid` to tell "other key" from "altered". */
    readonly keyId: string,
    private readonly clock: () => number,
  ) {}

  static async fromPem(pem: string, opts: { clock?: () => number } = {}): Promise<TokenAuthority> {
    let privateKey: CryptoKey;
    try {
      privateKey = await importPKCS8(pem, "ES256", { extractable: true });
    } catch (e) {
      throw new UserError(`the signing key is not an ES256 (P-256) PKCS#8 PEM key: ${(e as Error).message}`, 2);
    }
    const { d: _private, ...publicJwk } = await exportJWK(privateKey);
    const publicKey = (await importJWK(publicJwk, "ES256")) as CryptoKey;
    return new TokenAuthority(privateKey, publicKey, await calculateJwkThumbprint(publicJwk), opts.clock ?? Date.now);
  }

  async issue(p: Principal, lifetimeMs = TOKEN_LIFETIME_MS): Promise<IssuedToken> {
    if (!(lifetimeMs > 0)) throw new RangeError(`a token lifetime must be positive (got ${lifetimeMs} ms)`);
    if (!p.tokenId) throw new RangeError("a token needs a token id");
    const now = this.clock();
    const exp = Math.floor((now + lifetimeMs) / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: this.keyId, typ: "JWT" })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(subjectOf(p))
      .setJti(p.tokenId)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(exp)
      .sign(this.privateKey);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  async verify(token: string): Promise<TokenClaims> {
    const known = this.verified.get(token);
    // jose's rule: expired once exp <= now, in whole seconds.
    if (known && known.expiresAt.getTime() / 1000 > Math.floor(this.clock() / 1000)) return { ...known };
    if (known) this.verified.delete(token);
    const claims = await this.verifySignature(token);
    if (this.verified.size >= VERIFIED_TOKENS) this.verified.clear();
    this.verified.set(token, claims);
    return { ...claims };
  }

  private async verifySignature(token: string): Promise<TokenClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        algorithms: ["ES256"],
        requiredClaims: ["sub", "jti", "exp", "iat"],
        currentDate: new Date(this.clock()),
      }));
    } catch (e) {
      const why = this.headerKeyId(token) === this.keyId
        ? "its signature does not match (was it altered?)"
        : "it was signed by a different key (another controller, or a recreated data dir)";
      throw tokenError(e, "token", `was not issued by this controller: ${why}`);
    }
    const subject = parseSubject(payload.sub!);
    if (!subject) throw new TokenError("malformed", "token is malformed: its subject does not name a client, exporter or admin");
    return { ...subject, tokenId: payload.jti!, issuedAt: new Date(payload.iat! * 1000), expiresAt: new Date(payload.exp! * 1000) };
  }

  private headerKeyId(token: string): string | undefined {
    try {
      return decodeProtectedHeader(token).kid;
    } catch {
      return undefined;
    }
  }
}

export interface RouterGrant {
  namespace: string;
  lease: string;
  /** Both ends of one tunnel present tokens for the same stream id; the router pairs them by it. */
  streamId: string;
}

export interface VerifiedRouterGrant extends RouterGrant {
  /** Until then the router should keep the stream id spent, so a used token cannot open another stream. */
  expiresAt: Date;
}

/** Text for the `router-key` file: 32 random bytes, base64url. */
export function newRouterKey(): string {
  return `${randomBytes(32).toString("base64url")}\n`;
}

/** Short-lived tokens for one router stream of one lease, HS256 with the shared router key. */
export class RouterTokens {
  private readonly key: Uint8Array;

  /** `keyText` is the router-key file's content; like upstream's ROUTER_KEY, its bytes are the HMAC key. */
  constructor(keyText: string, private readonly clock: () => number = Date.now) {
    const text = keyText.trim();
    if (text.length < 32) throw new UserError("the router key is too short: it needs at least 32 characters", 2);
    this.key = new TextEncoder().encode(text);
  }

  static fromFile(file: string, clock?: () => number): RouterTokens {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new UserError(`cannot read the router key ${file}: ${(e as Error).message}`, 2);
    }
    return new RouterTokens(text, clock);
  }

  async issueRouterToken(grant: RouterGrant, ttlMs = ROUTER_TOKEN_TTL_MS): Promise<IssuedToken> {
    if (!(ttlMs > 0)) throw new RangeError(`a router token lifetime must be positive (got ${ttlMs} ms)`);
    const nowMs = this.clock();
    const now = Math.floor(nowMs / 1000);
    const exp = Math.floor((nowMs + ttlMs) / 1000);
    const token = await new SignJWT({ lease: grant.lease, namespace: grant.namespace })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ROUTER_TOKEN_ISSUER)
      .setAudience(ROUTER_TOKEN_AUDIENCE)
      .setSubject(grant.streamId)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  async verifyRouterToken(token: string): Promise<VerifiedRouterGrant> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        issuer: ROUTER_TOKEN_ISSUER,
        audience: ROUTER_TOKEN_AUDIENCE,
        algorithms: ["HS256"],
        requiredClaims: ["sub", "exp", "iat"],
        currentDate: new Date(this.clock()),
      }));
    } catch (e) {
      throw tokenError(e, "router token", "was not signed with this router key (the router needs the controller's router-key file)");
    }
    const { lease, namespace, sub } = payload;
    if (typeof lease !== "string" || typeof namespace !== "string" || !lease || !namespace) {
      throw new TokenError("malformed", "router token is malformed: it names no lease");
    }
    return { namespace, lease, streamId: sub!, expiresAt: new Date(payload.exp! * 1000) };
  }
}

export type Identity = TokenClaims;

/** Set by `authInterceptor` on every call it lets through. */
export const IDENTITY = createContextKey<Identity | undefined>(undefined, { description: "the authenticated caller" });

/** The caller of a handler behind `authInterceptor`. */
export function identityOf(ctx: { values: ContextValues }): Identity {
  const identity = ctx.values.get(IDENTITY);
  // Only a route registered without the interceptor gets here: a server bug, not the caller's.
  if (!identity) throw new ConnectError("this call was not authenticated (server misconfiguration)", Code.Internal);
  return identity;
}

export interface CurrentCredential {
  uid: string;
  tokenId: string;
}

export interface AuthOptions {
  authority: TokenAuthority;
  /** The principal as stored now; undefined when it no longer exists. */
  lookup: (kind: PrincipalKind, namespace: string, name: string) => CurrentCredential | undefined | Promise<CurrentCredential | undefined>;
  /** Which kinds may call a method; an empty list lets no one. */
  allow: (method: DescMethod) => readonly PrincipalKind[];
  /**
   * Told of each refused call: why in a word (for the metrics): `no-token`, `expired`,
   * `revoked`, ...; and for the audit log the message, the procedure, and who the token
   * belongs to when it was verified.
   */
  onRefuse?: (reason: RefusalReason, about: RefusalDetails) => void;
}

export type RefusalReason = TokenFailure | "no-token" | "bad-header" | "metadata-mismatch" | "revoked" | "not-allowed";

export interface RefusalDetails {
  message: string;
  procedure: string;
  who?: { kind: PrincipalKind; namespace: string; name: string };
}

/**
 * A refusal that knows its reason word; it is an ordinary ConnectError to the caller.
 * Told apart with `isRefusal`, not `instanceof`: ConnectError's own `Symbol.hasInstance`
 * answers true for every ConnectError, so `instanceof Refusal` took a handler's error
 * (an offline exporter, a stopping controller) for a refused token.
 */
const REFUSAL = Symbol("refusal");

class Refusal extends ConnectError {
  readonly [REFUSAL] = true;
  who?: TokenClaims;

  constructor(message: string, code: Code, readonly reason: RefusalReason) {
    super(message, code);
  }
}

function isRefusal(e: unknown): e is Refusal {
  return typeof e === "object" && e !== null && (e as { [REFUSAL]?: boolean })[REFUSAL] === true;
}

/** Marks the refusal with the (verified) token's owner. */
function by(claims: TokenClaims, refusal: Refusal): Refusal {
  refusal.who = claims;
  return refusal;
}

function tokenOf(kind: PrincipalKind): string {
  return kind === "Client" ? "a client token" : kind === "Exporter" ? "an exporter token" : "an admin token";
}

function unauthenticated(message: string, reason: RefusalReason): Refusal {
  return new Refusal(message, Code.Unauthenticated, reason);
}

function bearerToken(header: Headers): string {
  const value = header.get(AUTH_HEADER);
  if (value === null) {
    throw unauthenticated("no token was sent: set 'token' in your client or exporter config (or JMP_TOKEN)", "no-token");
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!m) throw unauthenticated("the authorization header is not 'Bearer <token>'", "bad-header");
  return m[1]!;
}

async function verified(authority: TokenAuthority, token: string): Promise<TokenClaims> {
  try {
    return await authority.verify(token);
  } catch (e) {
    if (!(e instanceof TokenError)) throw e;
    throw unauthenticated(`${e.message}; ask your admin for a new one`, e.reason);
  }
}

/** The metadata names are optional (the token says who it is) but must agree with the token when present. */
function checkMetadata(header: Headers, claims: TokenClaims): void {
  const who = `${claims.kind.toLowerCase()} '${claims.name}' in namespace '${claims.namespace}'`;
  const kind = header.get(KIND_HEADER);
  if (kind !== null && kind.toLowerCase() !== claims.kind.toLowerCase()) {
    throw unauthenticated(`the call says ${KIND_HEADER} is '${kind}' but the token belongs to ${who}`, "metadata-mismatch");
  }
  for (const [key, expected] of [[NAMESPACE_HEADER, claims.namespace], [NAME_HEADER, claims.name]] as const) {
    const given = header.get(key);
    if (given !== null && given !== expected) {
      throw unauthenticated(`the call says ${key} is '${given}' but the token belongs to ${who}`, "metadata-mismatch");
    }
  }
}

/** Authenticates every call and attaches the caller's identity (see `identityOf`). */
export function authInterceptor(opts: AuthOptions): Interceptor {
  const check = authenticate(opts);
  if (!opts.onRefuse) return check;
  const told = opts.onRefuse;
  return (next) => {
    const checked = check(next);
    return async (req) => {
      try {
        return await checked(req);
      } catch (e) {
        if (isRefusal(e)) {
          const who = e.who ? { kind: e.who.kind, namespace: e.who.namespace, name: e.who.name } : undefined;
          told(e.reason, { message: e.rawMessage, procedure: `${req.service.typeName}/${req.method.name}`, who });
        }
        throw e;
      }
    };
  };
}

function authenticate(opts: AuthOptions): Interceptor {
  return (next) => async (req) => {
    const claims = await verified(opts.authority, bearerToken(req.header));
    try {
      checkMetadata(req.header, claims);
    } catch (e) {
      throw isRefusal(e) ? by(claims, e) : e;
    }
    const current = await opts.lookup(claims.kind, claims.namespace, claims.name);
    if (!current || current.uid !== claims.uid || current.tokenId !== claims.tokenId) {
      throw by(claims, unauthenticated(
        `the ${claims.kind.toLowerCase()} '${claims.name}' was deleted or its token was rotated; this token is no longer valid`,
        "revoked",
      ));
    }
    if (!opts.allow(req.method).includes(claims.kind)) {
      throw by(claims, new Refusal(`${tokenOf(claims.kind)} cannot call ${req.method.name}`, Code.PermissionDenied, "not-allowed"));
    }
    req.contextValues.set(IDENTITY, claims);
    return next(req);
  };
}
