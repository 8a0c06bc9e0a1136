/**
 * A CA and a server certificate kept in files, made on first use and reused after:
 * the controller's data dir and a direct-mode exporter's `--tls-self-signed` both
 * keep theirs so. The CA is never remade behind anyone's back (every client trusts
 * it); the server certificate is re-issued when it is missing, unreadable, not from
 * this CA, about to expire, or for other names than wanted.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { UserError } from "./errors.ts";
import { certNames, createCA, createServerCert, issuedBy, serverNames } from "./pki.ts";

export interface TlsPaths {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

export interface TlsMaterial {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

// A server certificate this close to expiry is renewed at start rather than left to fail.
const RENEW_MARGIN_MS = 30 * 86_400_000;

/** A file's text, or undefined when it does not exist. */
export function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`, 2);
  }
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Why the server certificate must be (re-)issued: "" when it is missing, undefined when it can stay. */
function reissueReason(certPem: string | undefined, keyPem: string | undefined, caPem: string, wanted: string[], now?: Date) {
  if (certPem === undefined || keyPem === undefined) return "";
  let names: string[];
  try {
    names = certNames(certPem);
  } catch {
    return "re-issued: the old one was unreadable";
  }
  if (!issuedBy(certPem, caPem, RENEW_MARGIN_MS, now)) return "re-issued: not signed by the current CA, or about to expire";
  if (!sameSet(names, wanted)) return `re-issued for ${wanted.join(", ")}`;
  return undefined;
}

/**
 * The CA and a server certificate for `hosts`, from `paths`, made or re-issued as
 * needed. `write` stores a file (atomically, private) and may note why.
 */
export async function ensureTlsFiles(
  paths: TlsPaths,
  hosts: string[],
  opts: {
    now?: Date;
    write: (file: string, text: string, note?: string) => void;
    /** Who would need a new CA, for the message about a half-missing one. */
    trustedBy?: string;
  },
): Promise<TlsMaterial> {
  let caPem = readIfThere(paths.ca);
  let caKeyPem = readIfThere(paths.caKey);
  if (caPem === undefined && caKeyPem === undefined) {
    const ca = await createCA({ now: opts.now });
    opts.write(paths.caKey, (caKeyPem = ca.keyPem));
    opts.write(paths.ca, (caPem = ca.certPem));
  } else if (caPem === undefined || caKeyPem === undefined) {
    const [have, missing] = caPem === undefined ? [paths.caKey, paths.ca] : [paths.ca, paths.caKey];
    throw new UserError(
      `${have} exists but ${missing} does not: restore it, or remove both to make a new CA ` +
        `(${opts.trustedBy ?? "everyone who trusts the old one"} then needs the new CA)`,
      2,
    );
  }
  try {
    new X509Certificate(caPem);
  } catch (e) {
    throw new UserError(`${paths.ca} is not a PEM certificate (${(e as Error).message}); restore it from a backup`, 2);
  }
  let serverCertPem = readIfThere(paths.serverCert);
  let serverKeyPem = readIfThere(paths.serverKey);
  const reason = reissueReason(serverCertPem, serverKeyPem, caPem, serverNames(hosts), opts.now);
  if (reason !== undefined) {
    const server = await createServerCert({ certPem: caPem, keyPem: caKeyPem }, hosts, { now: opts.now });
    opts.write(paths.serverKey, (serverKeyPem = server.keyPem), reason);
    opts.write(paths.serverCert, (serverCertPem = server.certPem), reason);
  }
  return { caPem, serverCertPem: serverCertPem!, serverKeyPem: serverKeyPem! };
}
