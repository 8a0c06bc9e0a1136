/** Digest answers checked against the worked examples of RFC 7616 §3.9.1. */
import { expect, test } from "bun:test";
import { digestAuthorization, parseDigestChallenge } from "./digest.ts";

const RFC_CHALLENGE = (algorithm: string) =>
  `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, ` +
  `nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`;
const RFC_REQUEST = {
  user: "Mufasa",
  password: "Circle of Life",
  method: "GET",
  uri: "/dir/index.html",
  cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
  nc: 1,
};

test("the SHA-256 and MD5 answers are RFC 7616's", () => {
  for (const [algorithm, response] of [
    ["SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"],
    ["MD5", "8ca523f5e9506fed4657c9700eebdbec"],
  ] as const) {
    const header = digestAuthorization(parseDigestChallenge(RFC_CHALLENGE(algorithm))!, RFC_REQUEST);
    expect(header).toStartWith('Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html"');
    expect(header).toContain(`algorithm=${algorithm}, `);
    expect(header).toContain('nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth');
    expect(header).toContain(`response="${response}"`);
    expect(header).toContain('opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"');
  }
});

test("a challenge is found among others; what cannot be answered is said", () => {
  expect(parseDigestChallenge('Basic realm="plug"')).toBeUndefined();
  expect(parseDigestChallenge(null)).toBeUndefined();
  const ch = parseDigestChallenge('Basic realm="old", Digest qop="auth", realm="shellyplus1-a8032ab1", nonce="1700000000", algorithm=SHA-256');
  expect(ch).toEqual({ realm: "shellyplus1-a8032ab1", nonce: "1700000000", algorithm: "SHA-256", qop: ["auth"], opaque: undefined });
  expect(() => parseDigestChallenge('Digest realm="x", nonce="n", algorithm=SHA-1')).toThrow("unsupported Digest algorithm SHA-1");
  expect(() => parseDigestChallenge('Digest realm="x", nonce="n", qop="auth-int"')).toThrow('unsupported Digest qop auth-int');
  expect(() => parseDigestChallenge('Digest realm="x"')).toThrow("has no nonce");
});
