/**
 * The controller's data dir: keys and certificates made on first start and reused
 * after. Nothing is ever regenerated behind the admin's back except the server
 * certificate, which only clients' trust in the CA depends on: making a new signing
 * key, router key or CA would invalidate every token or config handed out.
 */
import { X509Certificate } from "node:crypto";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../common/errors.ts";
import { writeFileAtomic } from "../common/yaml-file.ts";
import { newRouterKey, newSigningKeyPem } from "./auth.ts";
import { certNames, createCA, createServerCert, issuedBy, serverNames } from "./pki.ts";

export const DATA_FILES = {
  signingKey: "signing-key.pem",
  routerKey: "router-key",
  ca: "ca.pem",
  caKey: "ca-key.pem",
  serverCert: "server.pem",
  serverKey: "server-key.pem",
} as const;

export type DataPaths = { [K in keyof typeof DATA_FILES]: string };

export interface DataDir {
  dir: string;
  /** Files made this time, as absolute paths; a re-issued server certificate says why after its path. */
  created: string[];
  paths: DataPaths;
  signingKeyPem: string;
  routerKey: string;
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
}

// A server certificate this close to expiry is renewed at start rather than left to fail.
const RENEW_MARGIN_MS = 30 * 86_400_000;

function read(file: string): string | undefined {
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

function checkCA(file: string, pem: string): void {
  try {
    new X509Certificate(pem);
  } catch (e) {
    throw new UserError(`${file} is not a PEM certificate (${(e as Error).message}); restore it from a backup`, 2);
  }
}

/** Whether the data dir holds keys from an earlier start: its database then holds their clients and exporters. */
export function hasKeys(dirArg: string): boolean {
  const dir = resolve(dirArg);
  return [DATA_FILES.signingKey, DATA_FILES.routerKey, DATA_FILES.ca].some((f) => existsSync(join(dir, f)));
}

/**
 * Refuses a data dir (or any of `files` in it that exist) that this process cannot
 * write, before anything is written: otherwise the controller would start, say it
 * listens, and then fail every change as an internal error. A dir not made yet needs
 * a writable parent. Nothing is created to find out.
 */
export function checkWritable(dirArg: string, files: readonly string[] = []): void {
  const dir = resolve(dirArg);
  const fix = "make it writable for the user running the controller (chown/chmod, or mount it read-write), or choose another --data-dir";
  const problem = (path: string): string | undefined => {
    try {
      accessSync(path, constants.W_OK);
      return undefined;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return err.code === "EROFS" ? "on a read-only file system" : err.code === "EACCES" ? "not writable" : `not usable (${err.message})`;
    }
  };
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== "ENOENT") {
      throw new UserError(`cannot use the data dir ${dir}: ${err.code === "EACCES" ? "permission denied" : err.message}; ${fix}`, 2);
    }
    let parent = dirname(dir);
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
    const why = problem(parent);
    if (why) throw new UserError(`cannot make the data dir ${dir}: ${parent} is ${why}; ${fix}`, 2);
    return;
  }
  if (!isDir) throw new UserError(`the data dir ${dir} is not a directory; choose another --data-dir`, 2);
  const why = problem(dir);
  if (why) throw new UserError(`the data dir ${dir} is ${why}: the controller keeps its database and keys there; ${fix}`, 2);
  for (const file of files) {
    const path = join(dir, file);
    const bad = existsSync(path) ? problem(path) : undefined;
    if (bad) throw new UserError(`${path} is ${bad}; ${fix}`, 2);
  }
}

export async function initDataDir(dirArg: string, opts: { hosts: string[]; now?: Date }): Promise<DataDir> {
  const wanted = serverNames(opts.hosts);
  const dir = resolve(dirArg);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask; the dir holds private keys, so insist.
    chmodSync(dir, 0o700);
  }
  const paths = Object.fromEntries(Object.entries(DATA_FILES).map(([k, f]) => [k, join(dir, f)])) as DataPaths;
  const created: string[] = [];
  const write = (file: string, text: string, note = "") => {
    writeFileAtomic(file, text, 0o600);
    created.push(note ? `${file} (${note})` : file);
  };

  let signingKeyPem = read(paths.signingKey);
  if (signingKeyPem === undefined) write(paths.signingKey, (signingKeyPem = await newSigningKeyPem()));

  let routerKey = read(paths.routerKey);
  if (routerKey === undefined) write(paths.routerKey, (routerKey = newRouterKey()));

  let caPem = read(paths.ca);
  let caKeyPem = read(paths.caKey);
  if (caPem === undefined && caKeyPem === undefined) {
    const ca = await createCA({ now: opts.now });
    write(paths.caKey, (caKeyPem = ca.keyPem));
    write(paths.ca, (caPem = ca.certPem));
  } else if (caPem === undefined || caKeyPem === undefined) {
    const [have, missing] = caPem === undefined ? [paths.caKey, paths.ca] : [paths.ca, paths.caKey];
    throw new UserError(
      `${have} exists but ${missing} does not: restore it, or remove both to make a new CA ` +
        "(every client and exporter config then needs the new CA)",
      2,
    );
  }

  checkCA(paths.ca, caPem);
  let serverCertPem = read(paths.serverCert);
  let serverKeyPem = read(paths.serverKey);
  const reason = reissueReason(serverCertPem, serverKeyPem, caPem, wanted, opts.now);
  if (reason !== undefined) {
    const server = await createServerCert({ certPem: caPem, keyPem: caKeyPem }, opts.hosts, { now: opts.now });
    write(paths.serverKey, (serverKeyPem = server.keyPem), reason);
    write(paths.serverCert, (serverCertPem = server.certPem), reason);
  }

  return {
    dir, created, paths, signingKeyPem, routerKey, caPem, serverCertPem: serverCertPem!, serverKeyPem: serverKeyPem!,
  };
}
