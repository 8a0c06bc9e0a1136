/**
 * The controller's data dir: keys and certificates made on first start and reused
 * after. Nothing is ever regenerated behind the admin's back except the server
 * certificate, which only clients' trust in the CA depends on: making a new signing
 * key, router key or CA would invalidate every token or config handed out.
 */
import { accessSync, chmodSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../common/errors.ts";
import { writeFileAtomic } from "../common/yaml-file.ts";
import { newRouterKey, newSigningKeyPem } from "./auth.ts";
import { serverNames } from "../common/pki.ts";
import { ensureTlsFiles, readIfThere } from "../common/tls-files.ts";

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
  // A bad host name is refused before anything is written.
  serverNames(opts.hosts);
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

  let signingKeyPem = readIfThere(paths.signingKey);
  if (signingKeyPem === undefined) write(paths.signingKey, (signingKeyPem = await newSigningKeyPem()));

  let routerKey = readIfThere(paths.routerKey);
  if (routerKey === undefined) write(paths.routerKey, (routerKey = newRouterKey()));

  const { caPem, serverCertPem, serverKeyPem } = await ensureTlsFiles(
    { ca: paths.ca, caKey: paths.caKey, serverCert: paths.serverCert, serverKey: paths.serverKey },
    opts.hosts,
    { now: opts.now, write, trustedBy: "every client and exporter config" },
  );

  return { dir, created, paths, signingKeyPem, routerKey, caPem, serverCertPem, serverKeyPem };
}
