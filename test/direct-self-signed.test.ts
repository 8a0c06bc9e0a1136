/**
 * Direct mode over TLS with nothing made by hand: `jmp run --tls-self-signed` makes
 * a CA and a server certificate once, keeps them in its state dir, and names the CA
 * for clients; `jmp shell --tls-grpc … --tls-ca` verifies against it, also after a
 * restart of the exporter.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../src/api/eventually.ts";
import { freePort, jmp, JMP, tempDir } from "./helpers.ts";

const dir = tempDir("jmp-self-signed-");
afterAll(() => dir.remove());
const config = dir.file("bench.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: { namespace: default, name: bench }
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
`);
const env = { XDG_DATA_HOME: join(dir.path, "state"), NO_COLOR: "1" };

/** `jmp run` in direct mode until it has said where its CA is; resolves to that path and a stop function. */
async function serve(port: number): Promise<{ ca: string; stop(): Promise<void> }> {
  const proc = Bun.spawn([JMP, "run", "--exporter-config", config, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-self-signed"], {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env },
  });
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  const ca = await eventually(() => {
    if (proc.exitCode !== null) throw new Error(`jmp run exited with ${proc.exitCode}:\n${err}`);
    const m = /clients verify this exporter with its CA: copy (\S+) /.exec(err);
    if (!m) throw new Error("not yet");
    return m[1]!;
  }, { what: "the exporter to name its CA", timeout: 20_000, interval: 50 });
  return {
    ca,
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

test("a self-signed exporter is verified with the CA it names, and keeps it across restarts", async () => {
  const port = await freePort();
  const first = await serve(port);
  expect(first.ca).toBe(join(dir.path, "state", "jumpstarter", "tls", "bench", "ca.pem"));
  const caPem = readFileSync(first.ca, "utf8");
  const shell = (ca?: string) => jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, ...(ca ? ["--tls-ca", ca] : []), "--", "j", "power", "on"], { env });
  try {
    expect((await shell(first.ca)).code).toBe(0);
    const unverified = await shell();
    expect(unverified.code).toBe(1);
    expect(unverified.stderr).toContain("its TLS certificate failed the check made here");
    expect(unverified.stderr).toContain("--tls-ca FILE");
  } finally {
    await first.stop();
  }
  const again = await serve(port);
  try {
    expect(readFileSync(again.ca, "utf8")).toBe(caPem);
    expect((await shell(first.ca)).code).toBe(0);
  } finally {
    await again.stop();
  }
  expect(existsSync(join(dir.path, "state", "jumpstarter", "tls", "bench", "ca-key.pem"))).toBe(true);
}, 60_000);

test("--tls-self-signed is one of three ways to run direct mode, not to be combined", async () => {
  const r = await jmp(["run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:1", "--tls-self-signed", "--tls-grpc-insecure"], { env });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("give one of --tls-cert/--tls-key, --tls-self-signed or --tls-grpc-insecure");
});
