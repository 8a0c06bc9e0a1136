/**
 * For tests: a real TLS router on 127.0.0.1 with a throwaway certificate (made by
 * openssl) that accepts any token as its own stream subject, and the certificate
 * alone for tests that stand up a peer of their own.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "../common/log.ts";
import type { TlsSettings } from "../common/tls.ts";
import { type RunningRouter, runRouter } from "./run.ts";

export interface TestRouter {
  router: RunningRouter;
  /** What a client needs to trust the router's certificate. */
  trust: TlsSettings;
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1, and the trust a client needs for it. */
export function throwawayCert(): { cert: string; key: string; trust: TlsSettings } {
  const dir = mkdtempSync(join(tmpdir(), "jmp-test-cert-"));
  try {
    const r = Bun.spawnSync([
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=jmp-test-router",
      "-addext", "subjectAltName=IP:127.0.0.1",
    ], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`);
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    return { cert, key: readFileSync(join(dir, "key.pem"), "utf8"), trust: { ca: cert } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startTestRouter(lease = "test-lease"): Promise<TestRouter> {
  const { cert, key, trust } = throwawayCert();
  const router = await runRouter({
    listen: { host: "127.0.0.1", port: 0 },
    tls: { cert, key },
    verify: async (token) => ({ subject: token, lease }),
    log: new Logger("router", () => {}),
  });
  return { router, trust, close: () => router.close() };
}
