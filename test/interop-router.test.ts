/**
 * The router's hand-written gRPC (src/router/router.ts) against a real gRPC
 * C-core client: Debian's grpcio, as upstream's Python clients and exporters
 * use it, over TLS with the router token as access-token call credentials.
 * The Python side is test/interop/router.py; the routers run in this process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "../src/common/log.ts";
import { type RunningRouter, runRouter } from "../src/router/run.ts";
import { startTestRouter, type TestRouter } from "../src/router/test-router.ts";
import { missingPython, run, runPythonJson } from "./interop/procs.ts";

const SCRIPT = join(import.meta.dir, "interop/router.py");
const BIG = 1024 * 1024 + 17;
/** Each scenario: procs.ts kills the script after 20 s. */
const TIMEOUT = 25_000;

const missing = missingPython() ?? (Bun.which("openssl") ? undefined : "openssl is missing (it comes with ca-certificates)");
if (missing) {
  console.warn(`router interop tests skipped: ${missing} (apt-get install -y python3-grpcio python3-protobuf protobuf-compiler)`);
}

interface Frame {
  type: "DATA" | "PING" | "GOAWAY" | "EOF";
  len?: number;
  sha256?: string;
}

interface Outcome {
  frames: Frame[];
  sent: Frame[];
  /** false: the call had not ended within the script's 10 s. */
  ended: boolean;
  read_error: { code: string; details: string } | null;
  code: string;
  status: number;
  details: string;
  trailing_metadata: Record<string, string>;
}

const EOF: Frame = { type: "EOF" };
const HELLO_SHA256 = new Bun.CryptoHasher("sha256").update("hello").digest("hex");

describe.skipIf(Boolean(missing))("a Python gRPC (C-core) client and exporter through the router", () => {
  let dir: string;
  let ca: string;
  let open: TestRouter;
  /** Refuses tokens starting with "bad"; gives up on a lonely side after 1 s. */
  let strict: RunningRouter;
  const logs: string[] = [];
  let counter = 0;
  /** A token no other test has used, so every scenario has its own subject. */
  const fresh = (what: string) => `${what}-${process.pid}-${++counter}`;
  const scenario = <T = Outcome>(address: string, name: string, ...args: string[]) =>
    runPythonJson<T>(SCRIPT, [address, ca, name, ...args]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-router-"));
    open = await startTestRouter("interop-lease");
    ca = join(dir, "ca.pem");
    writeFileSync(ca, String(open.trust.ca));

    // The strict router gets its own certificate, for 127.0.0.1 as well, trusted through the same CA file.
    const [cert, key] = [join(dir, "strict-cert.pem"), join(dir, "strict-key.pem")];
    const made = await run([
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-keyout", key, "-out", cert, "-subj", "/CN=jmp-strict-router", "-addext", "subjectAltName=IP:127.0.0.1",
    ]);
    if (made.code !== 0) throw new Error(`openssl could not make a certificate:\n${made.stderr}`);
    writeFileSync(ca, `${readFileSync(ca, "utf8").trimEnd()}\n${readFileSync(cert, "utf8")}`);
    strict = await runRouter({
      listen: { host: "127.0.0.1", port: 0 },
      tls: { cert: readFileSync(cert), key: readFileSync(key) },
      verify: async (token) => {
        if (token.startsWith("bad")) throw new Error("signature does not match");
        return { subject: token, lease: "strict-lease" };
      },
      pairTimeoutMs: 1000,
      log: new Logger("router", (r) => logs.push(`${r.level}: ${r.message}`)),
    });
  });

  afterAll(async () => {
    await open?.close();
    await strict?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a pair carries small, 1 MiB and PING frames both ways intact and in order, and a late answer after one side's half-close", async () => {
    const r = await scenario<{
      initial_metadata: Record<string, string>[];
      open_after_half_close: { client: boolean; exporter: boolean };
      exporter_frames_after_goaway: number;
      client: Outcome;
      exporter: Outcome;
    }>(open.router.address, "pair", fresh("pair"));
    const { client, exporter } = r;

    // What each side sent: six small DATA, one big DATA and a PING (the exporter adds its late answer), then GOAWAY.
    const shape = (sent: Frame[]): string[] => sent.map((f) => (f.type === "DATA" && f.len === BIG ? "BIG" : f.type));
    const talk: string[] = ["DATA", "DATA", "DATA", "BIG", "PING", "DATA", "DATA", "DATA"];
    expect(shape(client.sent)).toEqual([...talk, "GOAWAY"]);
    expect(shape(exporter.sent)).toEqual([...talk, "DATA", "GOAWAY"]);

    // Every frame arrives, byte for byte (length and sha256) and in order, then the clean end of the call.
    expect(exporter.frames).toEqual([...client.sent, EOF]);
    expect(client.frames).toEqual([...exporter.sent, EOF]);
    expect(client.frames.find((f) => f.len === BIG)?.sha256).not.toBe(exporter.frames.find((f) => f.len === BIG)?.sha256);

    // The client's half-close ended only its direction: its GOAWAY was the last
    // thing the exporter got, neither call ended, and the late answer got through.
    expect(r.exporter_frames_after_goaway).toBe(client.sent.length);
    expect(r.open_after_half_close).toEqual({ client: true, exporter: true });
    expect(client.frames.at(-3)).toMatchObject({ type: "DATA", len: "late answer after the client's GOAWAY".length });

    for (const side of [client, exporter]) {
      expect(side).toMatchObject({ read_error: null, code: "OK", status: 0, details: "", trailing_metadata: {} });
    }
    // The response headers carry no metadata of the router's own (Bun adds a date).
    for (const headers of r.initial_metadata) expect(Object.keys(headers).filter((k) => k !== "date")).toEqual([]);
  }, TIMEOUT);

  test("a token the router refuses is UNAUTHENTICATED with the reason", async () => {
    const r = await scenario(strict.address, "badtoken", "bad-token");
    expect(r).toMatchObject({ code: "UNAUTHENTICATED", status: 16, details: "invalid router token: signature does not match", frames: [] });
    expect(r.read_error).toEqual({ code: "UNAUTHENTICATED", details: "invalid router token: signature does not match" });
    expect(logs.some((l) => l.includes("invalid router token (signature does not match)"))).toBe(true);
  }, TIMEOUT);

  test("a call without a token is UNAUTHENTICATED", async () => {
    const r = await scenario(strict.address, "notoken");
    expect(r).toMatchObject({ code: "UNAUTHENTICATED", status: 16, details: "missing 'authorization: Bearer <router token>' metadata", frames: [] });
  }, TIMEOUT);

  test("when the client cancels, or is killed, the exporter's call ends UNAVAILABLE", async () => {
    type Vanished = Record<"cancel" | "cancel_after_half_close" | "kill", Outcome>;
    const r = await scenario<Vanished & { cancel: { client_code: string } }>(open.router.address, "vanish", fresh("vanish"));
    for (const how of ["cancel", "cancel_after_half_close", "kill"] as const) {
      const gone = { code: "UNAVAILABLE", details: "the other side of the stream went away" };
      expect(r[how]).toMatchObject({ ...gone, status: 14, ended: true });
      expect(r[how].read_error).toEqual(gone);
      expect(r[how].frames).toEqual([{ type: "DATA", len: 5, sha256: HELLO_SHA256 }]);
    }
    expect(r.cancel.client_code).toBe("CANCELLED");
  }, TIMEOUT);

  test("a third call with a pair's token is ALREADY_EXISTS, and the pair carries on", async () => {
    const r = await scenario<{ third: Outcome; client: Outcome; exporter: Outcome }>(open.router.address, "third", fresh("third"));
    expect(r.third).toMatchObject({ code: "ALREADY_EXISTS", status: 6, frames: [] });
    expect(r.third.details).toContain("already has both of its sides");
    expect(r.exporter.frames).toEqual([...r.client.sent, EOF]);
    expect(r.client.frames).toEqual([...r.exporter.sent, EOF]);
    expect([r.client.status, r.exporter.status]).toEqual([0, 0]);
  }, TIMEOUT);

  test("a side whose peer never comes is DEADLINE_EXCEEDED", async () => {
    const r = await scenario(strict.address, "lonely", fresh("lonely"));
    expect(r).toMatchObject({ code: "DEADLINE_EXCEEDED", status: 4, frames: [] });
    expect(r.details).toContain("the other side did not connect to the router within 1s");
  }, TIMEOUT);
});
