import { afterAll, beforeAll, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
import { UserError } from "../common/errors.ts";
import { type CertAndKey, certNames, createCA, createServerCert, issuedBy, normalizeHost, serverNames, uncoveredNames } from "./pki.ts";

let ca: CertAndKey;
let server: CertAndKey;
let tlsServer: tls.Server;
let port: number;

beforeAll(async () => {
  ca = await createCA();
  server = await createServerCert(ca, ["lab.example", "10.1.2.3", "[fd00::7]", "0.0.0.0"]);
  tlsServer = tls.createServer({ cert: server.certPem, key: server.keyPem, ALPNProtocols: ["h2"] }, (s) => s.end("hello"));
  await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
  port = (tlsServer.address() as AddressInfo).port;
});
afterAll(() => tlsServer.close());

/** A real handshake to the test server, presenting `servername` and trusting `caPem`. */
function handshake(servername: string | undefined, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, ca: caPem, ALPNProtocols: ["h2"] }, () => {
      socket.once("data", (d) => {
        resolve(`${socket.alpnProtocol}:${d}`);
        socket.destroy();
      });
    });
    socket.once("error", (e: NodeJS.ErrnoException) => reject(new Error(e.code)));
  });
}

test("the CA is a 10-year P-256 CA and the server certificate names the hosts plus the local defaults", () => {
  const caCert = new X509Certificate(ca.certPem);
  expect(caCert.ca).toBe(true);
  expect(caCert.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: "prime256v1" });
  const years = (Date.parse(caCert.validTo) - Date.parse(caCert.validFrom)) / (365.25 * 86_400_000);
  expect(Math.round(years)).toBe(10);

  const cert = new X509Certificate(server.certPem);
  expect(cert.ca).toBe(false);
  expect(cert.subject).toBe("CN=lab.example");
  expect(Date.parse(cert.validTo)).toBeLessThanOrEqual(Date.parse(caCert.validTo));
  expect(certNames(server.certPem)).toEqual(["localhost", "127.0.0.1", "::1", "lab.example", "10.1.2.3", "fd00::7"]);
  expect(issuedBy(server.certPem, ca.certPem)).toBe(true);
  expect(server.keyPem).toStartWith("-----BEGIN PRIVATE KEY-----\n");
});

test("coverage is checked per name, as a client would, wildcards included", async () => {
  expect(uncoveredNames(server.certPem, ["localhost", "LAB.example", "::1", "10.1.2.3", "0:0:0:0:0:0:0:1"])).toEqual([]);
  expect(uncoveredNames(server.certPem, ["lab.example", "other.example", "10.9.9.9"])).toEqual(["other.example", "10.9.9.9"]);
  const wildcard = await createServerCert(ca, ["*.lab.example"]);
  expect(uncoveredNames(wildcard.certPem, ["pi.lab.example", "lab.example", "a.b.lab.example"])).toEqual(["lab.example", "a.b.lab.example"]);
});

test("a real TLS handshake verifies against the CA for every name in the certificate", async () => {
  expect(await handshake("localhost", ca.certPem)).toBe("h2:hello");
  expect(await handshake("lab.example", ca.certPem)).toBe("h2:hello");
  // No SNI: the client checks the address it dialled against the IP SANs.
  expect(await handshake(undefined, ca.certPem)).toBe("h2:hello");
});

test("the handshake fails for a name the certificate does not carry, and against another CA", async () => {
  await expect(handshake("other.example", ca.certPem)).rejects.toThrow("ERR_TLS_CERT_ALTNAME_INVALID");
  const otherCA = await createCA();
  await expect(handshake("localhost", otherCA.certPem)).rejects.toThrow(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/);
  expect(issuedBy(server.certPem, otherCA.certPem)).toBe(false);
});

test("host names are normalized; bind-all addresses are dropped; nonsense is refused", () => {
  expect(serverNames(["Lab.Example.", "[::1]", "127.0.0.1", "::", "0.0.0.0", "fd00:0:0::7"])).toEqual([
    "localhost", "127.0.0.1", "::1", "lab.example", "fd00::7",
  ]);
  expect(normalizeHost("0.0.0.0")).toBeUndefined();
  expect(() => serverNames(["bad host"])).toThrow(UserError);
  expect(() => serverNames(["lab.example:8082"])).toThrow("'lab.example:8082' is not a host name or IP address that a certificate can name");
});

test("a server certificate expiring within the margin no longer counts as issued", () => {
  const validTo = Date.parse(new X509Certificate(server.certPem).validTo);
  expect(issuedBy(server.certPem, ca.certPem, 30 * 86_400_000, new Date(validTo - 31 * 86_400_000))).toBe(true);
  expect(issuedBy(server.certPem, ca.certPem, 30 * 86_400_000, new Date(validTo - 29 * 86_400_000))).toBe(false);
});
