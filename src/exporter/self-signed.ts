/**
 * `jmp run … --tls-grpc-listener PORT --tls-self-signed`: direct mode over TLS with
 * no certificate to make by hand. The exporter keeps a private CA and a server
 * certificate for this machine's names and addresses in its state dir, made once and
 * reused (a client given the CA keeps trusting it across restarts); the server
 * certificate is re-issued by itself when the machine's names change.
 */
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { checkAlias, defaultDataDir } from "../common/paths.ts";
import { normalizeHost } from "../common/pki.ts";
import { ensureTlsFiles } from "../common/tls-files.ts";
import { writeFileAtomic } from "../common/yaml-file.ts";

export interface SelfSignedTls {
  cert: string;
  key: string;
  /** The CA a client verifies this exporter with (`jmp shell --tls-grpc … --tls-ca FILE`). */
  caFile: string;
  /** Files made this time, with why. */
  created: string[];
}

/**
 * This machine's name and every address it has beyond loopback (loopback names are
 * always in); a host name a certificate cannot carry (an underscore, say) is left out.
 */
export function machineNames(listenHost?: string): string[] {
  const found = [hostname()];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (!a.internal && !a.address.startsWith("fe80:")) found.push(a.address);
  }
  const names = found.filter((n) => {
    try {
      return normalizeHost(n) !== undefined;
    } catch {
      return false;
    }
  });
  return listenHost ? [...names, listenHost] : names;
}

/** The exporter's CA and server certificate, under `<state dir>/tls/<name>/`. */
export async function selfSignedTls(exporterName: string, opts: { listenHost?: string; stateDir?: string; now?: Date } = {}): Promise<SelfSignedTls> {
  const dir = join(opts.stateDir ?? defaultDataDir(), "tls", checkAlias(exporterName, "exporter name"));
  const paths = { ca: join(dir, "ca.pem"), caKey: join(dir, "ca-key.pem"), serverCert: join(dir, "server.pem"), serverKey: join(dir, "server-key.pem") };
  const created: string[] = [];
  const tls = await ensureTlsFiles(paths, machineNames(opts.listenHost), {
    now: opts.now,
    // The CA is public (clients are handed it); the keys are not.
    write: (file, text, note) => {
      writeFileAtomic(file, text, file === paths.ca ? 0o644 : 0o600);
      created.push(note ? `${file} (${note})` : file);
    },
    trustedBy: "every client given the old ca.pem",
  });
  return { cert: tls.serverCertPem, key: tls.serverKeyPem, caFile: paths.ca, created };
}
