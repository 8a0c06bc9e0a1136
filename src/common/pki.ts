/**
 * A private certificate authority, for the controller's data dir and a direct-mode
 * exporter's self-signed TLS: ECDSA P-256 keys from WebCrypto, certificates built by
 * @peculiar/x509, so no openssl is needed at run time. Clients trust the CA (it
 * travels in their configs, or is given with --tls-ca), never the server certificate
 * itself, so the server certificate can be re-issued without touching any config.
 */
import { X509Certificate as NodeCertificate } from "node:crypto";
import { isIP } from "node:net";
import { UserError } from "./errors.ts";

export interface CertAndKey {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;
export const CA_LIFETIME_MS = 3650 * DAY_MS;
/** Names every server certificate carries, so a client on the controller's own machine always verifies. */
export const DEFAULT_SERVER_NAMES = ["localhost", "127.0.0.1", "::1"];
// Backdating absorbs small clock differences between the controller and its clients.
const BACKDATE_MS = 3_600_000;

// @peculiar/x509 (with the reflect-metadata polyfill it needs) takes ~120 ms to load;
// only the rare start that issues a certificate pays for it.
async function x509() {
  await import("reflect-metadata");
  const lib = await import("@peculiar/x509");
  lib.cryptoProvider.set(crypto);
  return lib;
}

function toPem(der: ArrayBuffer, label: string): string {
  const lines = Buffer.from(der).toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function fromPem(pem: string): ArrayBuffer {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  const bytes = Buffer.from(body, "base64");
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

/** A host name or address in the form certificates and comparisons use; undefined for wildcard bind addresses. */
export function normalizeHost(host: string): string | undefined {
  const h = host.trim().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
  const family = isIP(h);
  // 0.0.0.0 and :: are what a server binds to, never what a client dials.
  if (family === 4) return h === "0.0.0.0" ? undefined : h;
  if (family === 6) {
    const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    return canonical === "::" ? undefined : canonical;
  }
  const label = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  if (h.length <= 253 && new RegExp(`^(\\*\\.)?${label}(\\.${label})*$`).test(h)) return h;
  throw new UserError(`'${host}' is not a host name or IP address that a certificate can name`, 2);
}

/** The names a server certificate for these hosts carries: the defaults, then the hosts, without repeats. */
export function serverNames(hosts: string[]): string[] {
  const names = [...DEFAULT_SERVER_NAMES, ...hosts].map(normalizeHost).filter((n) => n !== undefined);
  return [...new Set(names)];
}

export async function createCA(opts: { now?: Date; commonName?: string } = {}): Promise<CertAndKey> {
  const lib = await x509();
  const now = opts.now ?? new Date();
  const keys = await newKeyPair();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [opts.commonName ?? "jmp controller CA"] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyPem(keys.privateKey) };
}

/** A server certificate signed by `ca`, naming the hosts plus localhost, 127.0.0.1 and ::1; it expires with the CA. */
export async function createServerCert(ca: CertAndKey, hosts: string[], opts: { now?: Date } = {}): Promise<CertAndKey> {
  const lib = await x509();
  const now = opts.now ?? new Date();
  const names = serverNames(hosts);
  const caCert = new lib.X509Certificate(ca.certPem);
  const caKey = await crypto.subtle.importKey("pkcs8", fromPem(ca.keyPem), ALGORITHM, false, ["sign"]);
  const keys = await newKeyPair();
  const firstHost = names.find((n) => !DEFAULT_SERVER_NAMES.includes(n)) ?? "localhost";
  const cert = await lib.X509CertificateGenerator.create({
    subject: [{ CN: [firstHost] }],
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(Math.min(now.getTime() + CA_LIFETIME_MS, caCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth]),
      new lib.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? "ip" : "dns", value: n }))),
      await lib.AuthorityKeyIdentifierExtension.create(caCert),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyPem(keys.privateKey) };
}

/** The DNS names and IP addresses a certificate's subjectAltName holds, normalized like `serverNames`. */
export function certNames(certPem: string): string[] {
  const san = new NodeCertificate(certPem).subjectAltName ?? "";
  return san
    .split(", ")
    .map((entry) => /^(?:DNS|IP Address):(.*)$/.exec(entry)?.[1])
    .filter((v) => v !== undefined)
    .map((v) => normalizeHost(v) ?? v);
}

/** The names a client could not verify against this certificate (wildcards honoured); empty when it covers them all. */
export function uncoveredNames(certPem: string, names: string[]): string[] {
  const cert = new NodeCertificate(certPem);
  return names.filter((name) => {
    const n = normalizeHost(name) ?? name;
    return isIP(n) ? cert.checkIP(n) === undefined : cert.checkHost(n, { subject: "never" }) === undefined;
  });
}

/** Whether `certPem` was signed by the CA in `caPem` and is still valid `marginMs` from now. */
export function issuedBy(certPem: string, caPem: string, marginMs = 0, now = new Date()): boolean {
  const cert = new NodeCertificate(certPem);
  const ca = new NodeCertificate(caPem);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey) && new Date(cert.validTo).getTime() > now.getTime() + marginMs;
}
