/**
 * Direct mode as users run it: `jmp run --tls-grpc-listener` on one side,
 * `jmp shell --tls-grpc` and `j` on the other, with TLS or h2c and a passphrase.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { eventually } from "../src/api/eventually.ts";
import { freePort, jmp, JMP, tcpAccepts, tempDir, whileRunning } from "./helpers.ts";

const dir = tempDir("jmp-direct-");
const config = dir.file("lab.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: { namespace: default, name: bench }
motd: Welcome to the bench
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
`);
const running: Subprocess[] = [];

function startExporter(args: string[]): { proc: Subprocess; stderr: () => string } {
  let err = "";
  const proc = Bun.spawn([JMP, "run", "--exporter-config", config, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  running.push(proc);
  return { proc, stderr: () => err };
}

/** Until the exporter accepts connections on its port (fails at once if it exits). */
async function listening(exporter: { proc: Subprocess; stderr: () => string }, port: number): Promise<void> {
  await eventually(() => tcpAccepts(port), { what: `the exporter to listen on ${port}`, interval: 20, signal: whileRunning(exporter.proc, "the exporter", exporter.stderr) });
}

let tlsPort = 0;
let h2cPort = 0;
let h2cLog: () => string;

beforeAll(async () => {
  // A private CA and a server certificate for 127.0.0.1, as a lab would make with openssl.
  const sh = (cmd: string) => {
    const r = Bun.spawnSync(["sh", "-c", cmd], { cwd: dir.path, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
  sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext");
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other");

  tlsPort = await freePort();
  const tls = startExporter(["--tls-grpc-listener", `127.0.0.1:${tlsPort}`, "--tls-cert", `${dir.path}/server.pem`, "--tls-key", `${dir.path}/server.key`]);
  h2cPort = await freePort();
  const h2c = startExporter(["--tls-grpc-listener", `127.0.0.1:${h2cPort}`, "--tls-grpc-insecure", "--passphrase", "s3cret-words"]);
  h2cLog = h2c.stderr;
  await Promise.all([listening(tls, tlsPort), listening(h2c, h2cPort)]);
});

afterAll(async () => {
  for (const p of running) p.kill("SIGTERM");
  await Promise.all(running.map((p) => p.exited));
  dir.remove();
});

test("TLS verified against --tls-ca: j commands inside the shell work", async () => {
  const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${tlsPort}`, "--tls-ca", `${dir.path}/ca.pem`, "--", "sh", "-c", "j power on && j power read"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("voltage=5 V  current=2 A");
});

test("TLS against the wrong CA is refused with a clear message", async () => {
  const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${tlsPort}`, "--tls-ca", `${dir.path}/other.pem`, "--", "true"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`cannot reach the exporter at 127.0.0.1:${tlsPort}`);
  expect(r.stderr.toLowerCase()).toMatch(/certificate|self.signed|verify/);
});

test("h2c with the passphrase works; it reaches j through the environment", async () => {
  const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${h2cPort}`, "--tls-grpc-insecure", "--passphrase", "s3cret-words", "--", "sh", "-c", "j power off; echo code=$?"]);
  expect(r.stdout).toContain("code=0");
  expect(r.code).toBe(0);
});

test("a wrong or missing passphrase is refused and never logged", async () => {
  const wrong = await jmp(["shell", "--tls-grpc", `127.0.0.1:${h2cPort}`, "--tls-grpc-insecure", "--passphrase", "guess", "--", "true"]);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toContain("invalid or missing passphrase");
  const j = await jmp(["j", "power", "on"], { env: { JUMPSTARTER_HOST: `127.0.0.1:${h2cPort}`, JMP_GRPC_INSECURE: "1" } });
  expect(j.code).toBe(1);
  expect(j.stderr).toContain("invalid or missing passphrase");
  // The exporter's log is what this is about: it records the refusal, and never the passphrase.
  await eventually(() => expect(h2cLog()).toContain("refused"), { what: "the exporter to log the refusal", interval: 20 });
  expect(h2cLog()).not.toContain("guess");
  expect(h2cLog()).not.toContain("s3cret-words");
});

test("jmp run checks its flags before serving", async () => {
  const both = await jmp(["run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:1", "--tls-grpc-insecure", "--tls-cert", "a", "--tls-key", "b"]);
  expect(both.code).toBe(2);
  expect(both.stderr).toContain("give one of --tls-cert/--tls-key, --tls-self-signed or --tls-grpc-insecure");
  const neither = await jmp(["run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:1"]);
  expect(neither.code).toBe(2);
  expect(neither.stderr).toContain("needs --tls-cert FILE --tls-key FILE, --tls-self-signed, or --tls-grpc-insecure");
  const badPort = await jmp(["run", "--exporter-config", config, "--tls-grpc-listener", "99999", "--tls-grpc-insecure"]);
  expect(badPort.code).toBe(2);
  expect(badPort.stderr).toContain("'--tls-grpc-listener' must be [HOST:]PORT");
  const busy = await jmp(["run", "--exporter-config", config, "--tls-grpc-listener", `127.0.0.1:${h2cPort}`, "--tls-grpc-insecure"]);
  expect(busy.code).toBe(1);
  expect(busy.stderr).toContain("the address is in use");
});

test("SIGTERM stops the exporter with upstream's exit code", async () => {
  const port = await freePort();
  const exporter = startExporter(["--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"]);
  await listening(exporter, port);
  const { proc } = exporter;
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(143);
});
