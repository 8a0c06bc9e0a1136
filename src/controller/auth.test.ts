import { beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt, decodeProtectedHeader, importPKCS8, jwtVerify, SignJWT } from "jose";
import {
  newRouterKey, newSigningKeyPem, parseSubject, type Principal, ROUTER_TOKEN_AUDIENCE, ROUTER_TOKEN_ISSUER, RouterTokens, subjectOf,
  TOKEN_AUDIENCE, TOKEN_ISSUER, TokenAuthority, TokenError,
} from "./auth.ts";

const DAY = 86_400_000;
const alice: Principal = { kind: "Client", namespace: "lab", name: "alice", uid: "4f7c-uid", tokenId: "tok-1" };
let pem: string;
let authority: TokenAuthority;

beforeAll(async () => {
  pem = await newSigningKeyPem();
  authority = await TokenAuthority.fromPem(pem);
});

async function failure(p: Promise<unknown>): Promise<TokenError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(TokenError);
  return e as TokenError;
}

/** A token signed with the controller's own key but with claims of our choosing. */
async function signWithKey(claims: Record<string, unknown>, aud = TOKEN_AUDIENCE, iss = TOKEN_ISSUER): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: authority.keyId }).setIssuer(iss).setAudience(aud)
    .setIssuedAt().setExpirationTime("1h").sign(await importPKCS8(pem, "ES256"));
}

test("a token carries upstream's subject, issuer and audience, the token id as jti, and lasts a year", async () => {
  const before = Date.now();
  const { token, expiresAt } = await authority.issue(alice);
  const payload = decodeJwt(token);
  expect(payload).toMatchObject({ sub: "client:lab:alice:4f7c-uid", iss: "https://localhost:8085", aud: "jumpstarter", jti: "tok-1" });
  expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", kid: authority.keyId });
  expect(Math.abs(expiresAt.getTime() - (before + 365 * DAY))).toBeLessThan(2000);
  expect(payload.exp).toBe(expiresAt.getTime() / 1000);

  const claims = await authority.verify(token);
  expect(claims).toMatchObject({ ...alice, expiresAt });
  expect(subjectOf({ ...alice, kind: "Admin" })).toBe("admin:lab:alice:4f7c-uid");
  expect(parseSubject("exporter:lab:pi-1:u")).toEqual({ kind: "Exporter", namespace: "lab", name: "pi-1", uid: "u" });
  expect(parseSubject("system:serviceaccount:x")).toBeUndefined();
  expect(() => subjectOf({ ...alice, name: "a:b" })).toThrow(RangeError);
});

test("an expired token is refused with the time it expired", async () => {
  const issuedAt = Date.parse("2025-03-01T10:00:00Z");
  const past = await TokenAuthority.fromPem(pem, { clock: () => issuedAt });
  const { token } = await past.issue(alice, DAY);
  const e = await failure(authority.verify(token));
  expect(e.reason).toBe("expired");
  expect(e.message).toBe("token expired at 2025-03-02T10:00:00Z");
  expect(e.expiredAt).toEqual(new Date("2025-03-02T10:00:00Z"));
  // The same token is fine while it lasts.
  const then = await TokenAuthority.fromPem(pem, { clock: () => issuedAt + DAY / 2 });
  expect((await then.verify(token)).name).toBe("alice");
});

test("a token verified once is refused once it expires (the verified-token memory ends at its expiry)", async () => {
  let clock = Date.parse("2025-03-01T10:00:00Z");
  const timed = await TokenAuthority.fromPem(pem, { clock: () => clock });
  const { token } = await timed.issue(alice, DAY);
  expect((await timed.verify(token)).name).toBe("alice");
  clock += DAY - 1000;
  expect((await timed.verify(token)).name).toBe("alice");
  clock += 1000;
  const e = await failure(timed.verify(token));
  expect(e.reason).toBe("expired");
  expect(e.message).toBe("token expired at 2025-03-02T10:00:00Z");
});

test("claims handed out are copies: changing them does not change the next call's", async () => {
  const { token } = await authority.issue(alice);
  for (let i = 0; i < 2; i++) (await authority.verify(token)).name = "mallory";
  expect((await authority.verify(token)).name).toBe("alice");
});

test("a tampered token, or one from another controller, has a bad signature", async () => {
  const { token } = await authority.issue(alice);
  const [header, , signature] = token.split(".");
  const forged = Buffer.from(JSON.stringify({ ...decodeJwt(token), sub: "admin:lab:alice:4f7c-uid" })).toString("base64url");
  const altered = await failure(authority.verify(`${header}.${forged}.${signature}`));
  expect(altered.reason).toBe("bad-signature");
  expect(altered.message).toBe("token was not issued by this controller: its signature does not match (was it altered?)");

  const other = await TokenAuthority.fromPem(await newSigningKeyPem());
  const foreign = await failure(authority.verify((await other.issue(alice)).token));
  expect(foreign.reason).toBe("bad-signature");
  expect(foreign.message).toContain("signed by a different key");
});

test("garbage, foreign algorithms and odd subjects are malformed; another audience or issuer is named", async () => {
  expect((await failure(authority.verify("not-a-token"))).reason).toBe("malformed");
  const routerToken = (await new RouterTokens(newRouterKey()).issueRouterToken({ namespace: "lab", lease: "l", streamId: "s" })).token;
  expect((await failure(authority.verify(routerToken))).reason).toBe("malformed");

  const wrongAud = await failure(authority.verify(await signWithKey({ sub: "client:lab:alice:u", jti: "t" }, "kubernetes")));
  expect(wrongAud.reason).toBe("wrong-audience");
  expect(wrongAud.message).toBe('token is meant for another service (audience "kubernetes")');
  const wrongIss = await failure(authority.verify(await signWithKey({ sub: "client:lab:alice:u", jti: "t" }, TOKEN_AUDIENCE, "https://dex")));
  expect(wrongIss.reason).toBe("wrong-issuer");
  expect(wrongIss.message).toBe('token comes from another issuer ("https://dex")');

  const noJti = await failure(authority.verify(await signWithKey({ sub: "client:lab:alice:u" })));
  expect(noJti.reason).toBe("malformed");
  const badSub = await failure(authority.verify(await signWithKey({ sub: "alice", jti: "t" })));
  expect(badSub.message).toBe("token is malformed: its subject does not name a client, exporter or admin");
});

test("issuing refuses a non-positive lifetime and a missing token id", async () => {
  await expect(authority.issue(alice, 0)).rejects.toThrow(RangeError);
  await expect(authority.issue({ ...alice, tokenId: "" })).rejects.toThrow("a token needs a token id");
  await expect(TokenAuthority.fromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).rejects.toThrow(
    "the signing key is not an ES256 (P-256) PKCS#8 PEM key",
  );
});

test("router tokens bind one stream of one lease, live two minutes, and verify like upstream's", async () => {
  const key = newRouterKey();
  const now = Date.parse("2025-06-01T12:00:00Z");
  let clock = now;
  const tokens = new RouterTokens(key, () => clock);
  const { token, expiresAt } = await tokens.issueRouterToken({ namespace: "lab", lease: "lease-7", streamId: "stream-9" });
  expect(expiresAt).toEqual(new Date(now + 120_000));
  expect(await tokens.verifyRouterToken(token)).toEqual({ namespace: "lab", lease: "lease-7", streamId: "stream-9", expiresAt });

  // Upstream's router checks exactly this: HS256 with the key text's bytes, its issuer and audience, iat and exp.
  const { payload } = await jwtVerify(token, new TextEncoder().encode(key.trim()), {
    issuer: ROUTER_TOKEN_ISSUER, audience: ROUTER_TOKEN_AUDIENCE, algorithms: ["HS256"], currentDate: new Date(now),
  });
  expect(payload.sub).toBe("stream-9");
  expect(payload.jti).toBeString();

  clock = now + 121_000;
  const expired = await failure(tokens.verifyRouterToken(token));
  expect(expired.message).toBe("router token expired at 2025-06-01T12:02:00Z");
  clock = now;
  const otherKey = await failure(new RouterTokens(newRouterKey(), () => now).verifyRouterToken(token));
  expect(otherKey.reason).toBe("bad-signature");
  expect(otherKey.message).toBe("router token was not signed with this router key (the router needs the controller's router-key file)");
  expect((await failure(tokens.verifyRouterToken((await authority.issue(alice)).token))).reason).toBe("malformed");
  expect(() => new RouterTokens("short")).toThrow("the router key is too short");
});

test("the router key is shared through its file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "jmp-rk-"));
  try {
    const file = join(dir, "router-key");
    const key = newRouterKey();
    writeFileSync(file, key);
    const controllerSide = new RouterTokens(key);
    const { token } = await controllerSide.issueRouterToken({ namespace: "lab", lease: "l", streamId: "s" });
    expect((await RouterTokens.fromFile(file).verifyRouterToken(token)).streamId).toBe("s");
    expect(() => RouterTokens.fromFile(join(dir, "missing"))).toThrow(`cannot read the router key ${join(dir, "missing")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
