/**
 * Wire compatibility with upstream's Python gRPC stack, using Debian's grpcio
 * (C-core) in place of upstream's packages: a Python client shaped like
 * upstream's drives `jmp run` in direct mode, and our `j` drives a Python
 * exporter shaped like upstream's Session. The Python side lives in test/interop/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GpioSim, simulationMissing } from "../drivers/gpiod/testing/sim.ts";
import { shellyGen2, type ShellySim } from "../drivers/http_power/shelly-sim.ts";
import { J, JMP } from "./helpers.ts";
import { missingPython, PYTHON, run, runPythonJson, Watched } from "./interop/procs.ts";
const CLIENT = join(import.meta.dir, "interop/client.py");
const EXPORTER = join(import.meta.dir, "interop/exporter.py");
const PASSPHRASE = "secret";
const ECHO_TYPE = "jumpstarter_driver_network.driver.EchoNetwork";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const missing = missingPython();
if (missing) {
  console.warn(`interop tests skipped: ${missing} (apt-get install -y python3-grpcio python3-protobuf protobuf-compiler)`);
}

function requireBinary(): void {
  if (!existsSync(JMP)) throw new Error(`${JMP} is missing: build it with 'bun scripts/build.ts' (npm test does)`);
}

/** Our environment minus anything that would change how jmp/j pick their target or credentials. */
function cleanEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, ...extra };
  for (const k of Object.keys(env)) {
    if ((k.startsWith("JMP_") || k.startsWith("JUMPSTARTER_")) && !(k in extra)) delete env[k];
  }
  return env;
}

/** Sends `text`, half-closes, and collects what comes back until the other side ends too. */
function echoOverTcp(port: number, text: string): Promise<{ received: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received, ended: false });
    }, 10_000);
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      received += chunk.toString();
      if (received.length >= text.length) socket.end();
    });
    socket.on("end", () => {
      clearTimeout(timer);
      resolve({ received, ended: true });
    });
    socket.write(text);
  });
}

const hasEcho = existsSync(JMP) && Bun.spawnSync([JMP, "driver", "list"]).stdout.toString().includes(ECHO_TYPE);

/** `jmp run` in direct mode on 127.0.0.1 with MockPower (and EchoNetwork), requiring PASSPHRASE. */
async function startDirect(dir: string, transport: string[]): Promise<{ exporter: Watched; address: string }> {
  const config = join(dir, "exporter.yaml");
  writeFileSync(
    config,
    [
      "apiVersion: jumpstarter.dev/v1alpha1",
      "kind: ExporterConfig",
      "metadata:",
      "  namespace: lab",
      "  name: interop",
      "export:",
      "  power:",
      "    type: jumpstarter_driver_power.driver.MockPower",
      ...(hasEcho ? ["  echo:", `    type: ${ECHO_TYPE}`] : []),
      "",
    ].join("\n"),
  );
  // Port 0: the exporter logs the port it bound, so there is no race for a free one.
  const exporter = new Watched(
    "jmp run",
    [JMP, "run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:0", ...transport, "--passphrase", PASSPHRASE],
    cleanEnv({}),
  );
  const address = await exporter.waitFor(
    (lines) => lines.map((l) => /serving .* on (127\.0\.0\.1:\d+)/.exec(l)?.[1]).find(Boolean),
    "the listening address",
  );
  return { exporter, address };
}

describe.skipIf(Boolean(missing))("a Python gRPC client (upstream's shape) drives `jmp run` in direct mode", () => {
  let dir: string;
  let exporter: Watched;
  let address: string;
  /** `passphrase: null` sends none. */
  const client = (scenario: string, passphrase: string | null = PASSPHRASE) =>
    runPythonJson(CLIENT, [address, scenario, ...(passphrase === null ? [] : ["--passphrase", passphrase])]);

  beforeAll(async () => {
    requireBinary();
    if (!hasEcho) console.warn(`byte-stream interop test skipped: ${ECHO_TYPE} is not in 'jmp driver list' yet`);
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    ({ exporter, address } = await startDirect(dir, ["--tls-grpc-insecure"]));
  });

  afterAll(async () => {
    await exporter?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("GetReport gives the tree upstream's client builds: composite root, named children linked by parent_uuid", async () => {
    const r = await client("report");
    expect(r.uuid).toMatch(UUID);
    const [root, ...children] = r.reports;
    expect(root.parent_uuid).toBeNull();
    expect(root.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_composite.client.CompositeClient");
    expect(root.labels["jumpstarter.dev/name"]).toBeUndefined();
    for (const report of r.reports) expect(report.uuid).toMatch(UUID);
    expect(new Set(r.reports.map((x: { uuid: string }) => x.uuid)).size).toBe(r.reports.length);
    for (const child of children) expect(child.parent_uuid).toBe(root.uuid);
    const power = children.find((c: { labels: Record<string, string> }) => c.labels["jumpstarter.dev/name"] === "power");
    expect(power.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_power.client.PowerClient");
    expect(r.tree.client).toBe("jumpstarter_driver_composite.client.CompositeClient");
    expect(r.tree.children.power).toEqual({ uuid: power.uuid, client: "jumpstarter_driver_power.client.PowerClient", children: {} });
    expect(Object.keys(r.tree.children).sort()).toEqual(hasEcho ? ["echo", "power"] : ["power"]);
  });

  test("DriverCall on/off with the passphrase runs the driver and returns null", async () => {
    expect(await client("power")).toEqual({ on: null, off: null });
    // MockPower's log is the only trace that the calls ran on our exporter, and in order: it is the subject.
    await exporter.waitFor((lines) => (lines.some((l) => /power off/.test(l)) ? true : undefined), "the driver's 'power off' log");
    const logged = exporter.lines.filter((l) => /power (on|off)$/.test(l));
    expect(logged.map((l) => l.split(" ").slice(-2).join(" "))).toEqual(["power on", "power off"]);
  });

  test("StreamingDriverCall read streams MockPower's two readings", async () => {
    expect(await client("read")).toEqual({ readings: [{ voltage: 0, current: 0 }, { voltage: 5, current: 2 }] });
  });

  test("LogStream delivers the driver's log line with the fields upstream's client reads", async () => {
    expect(await client("logs")).toEqual({ severity: "INFO", source: "LOG_SOURCE_DRIVER", driver_type: "power" });
  });

  test("GetStatus reports LEASE_READY (4)", async () => {
    expect((await client("status")).status).toBe(4);
  });

  test("every RPC without the passphrase, or with a wrong one, is UNAUTHENTICATED", async () => {
    const rejected = { code: "UNAUTHENTICATED", details: "invalid or missing passphrase" };
    const all = { GetReport: rejected, DriverCall: rejected, StreamingDriverCall: rejected, Stream: rejected };
    expect(await client("rejected", null)).toEqual(all);
    expect(await client("rejected", "not-the-passphrase")).toEqual(all);
  });

  test("an unknown method, called or opened as a stream, is NOT_FOUND, as upstream's exporter answers", async () => {
    const r = await client("unknown-method");
    expect(r.DriverCall.code).toBe("NOT_FOUND");
    expect(r.DriverCall.details).toStartWith("method explode not found on driver");
    expect(r.Stream.code).toBe("NOT_FOUND");
    expect(r.Stream.details).toStartWith("method explode not found on driver");
  });

  test.skipIf(!hasEcho)("RouterService.Stream with `request` metadata echoes DATA and ends after GOAWAY", async () => {
    const r = await client("echo");
    expect(r.echoed).toBe("hello from python");
    expect(r.end).toBe("FRAME_TYPE_GOAWAY");
    expect(r.code).toBe("OK");
  });

  test("a resource stream answers with a client_stream handle in its initial metadata", async () => {
    const { metadata } = await client("resource");
    expect(typeof metadata.resource).toBe("string");
    const handle = JSON.parse(metadata.resource);
    expect(handle.kind).toBe("client_stream");
    expect(handle.uuid).toMatch(UUID);
    expect(handle.x_jmp_content_encoding).toBeNull();
    expect(metadata.x_jmp_accept_encoding).toBeUndefined();
  });
});

const noGpioSim = simulationMissing();

describe.skipIf(Boolean(missing ?? noGpioSim))("a Python gRPC client drives a GPIO PowerSwitch as upstream's PowerClient does", () => {
  let dir: string;
  let sim: GpioSim;
  let address: string;

  beforeAll(async () => {
    requireBinary();
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    const config = join(dir, "exporter.yaml");
    writeFileSync(config, [
      "apiVersion: jumpstarter.dev/v1alpha1",
      "kind: ExporterConfig",
      "metadata:",
      "  namespace: lab",
      "  name: interop-gpio",
      "export:",
      "  power:",
      "    type: jumpstarter_driver_gpiod.driver.PowerSwitch",
      "    config:",
      "      line: RELAY",
      "      active_low: true",
      "",
    ].join("\n"));
    // A simulated chip (umockdev, see drivers/gpiod/testing) with the relay on line 5.
    sim = new GpioSim(
      [{ name: "gpiochip0", lines: 8, names: { 5: "RELAY" } }],
      [JMP, "run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:0", "--tls-grpc-insecure", "--passphrase", PASSPHRASE],
      cleanEnv({}),
    );
    address = await sim.waitForOutput((l) => /serving .* on (127\.0\.0\.1:\d+)/.exec(l)?.[1], "the listening address");
  });

  afterAll(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("on, off and cycle switch the line; read is UNIMPLEMENTED; the line is released when the exporter stops", async () => {
    const r = await runPythonJson(CLIENT, [address, "gpio-power", "--passphrase", PASSPHRASE]);
    expect(r).toEqual({
      client: "jumpstarter_driver_power.client.PowerClient",
      on: null,
      off: null,
      read: { code: "UNIMPLEMENTED", details: "line 5 (RELAY) of /dev/gpiochip0 switches power; it cannot measure voltage or current" },
      read_pin: 1,
    });
    // on, off, then the cycle's off and on, as the active-low pin sees them
    expect(sim.ioctls("GPIO_V2_LINE_SET_VALUES_IOCTL").map((c) => [c.bits, c.physical])).toEqual([
      ["0x1", { 5: 0 }], ["0x0", { 5: 1 }], ["0x0", { 5: 1 }], ["0x1", { 5: 0 }],
    ]);
    expect(await sim.stop("SIGTERM")).toBe(143);
    expect(sim.records().filter((c) => c.released)).toEqual([{ chip: "gpiochip0", closed: true, released: [5] }]);
  });
});

describe.skipIf(Boolean(missing))("a Python gRPC client drives an HttpPower (a Shelly Gen2 plug) as upstream's PowerClient does", () => {
  let dir: string;
  let plug: ShellySim;
  let exporter: Watched;
  let address: string;

  beforeAll(async () => {
    requireBinary();
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    plug = await shellyGen2({ password: "plug-pass" });
    const config = join(dir, "exporter.yaml");
    writeFileSync(config, [
      "apiVersion: jumpstarter.dev/v1alpha1",
      "kind: ExporterConfig",
      "metadata:",
      "  namespace: lab",
      "  name: interop-shelly",
      "export:",
      "  power:",
      "    type: jumpstarter_driver_http_power.driver.HttpPower",
      "    config:",
      `      power_on: {url: "${plug.url}/rpc/Switch.Set?id=0&on=true"}`,
      `      power_off: {url: "${plug.url}/rpc/Switch.Set?id=0&on=false"}`,
      `      power_read: {url: "${plug.url}/rpc/Switch.GetStatus?id=0"}`,
      "      auth: {digest: {user: admin, password: plug-pass}}",
      "",
    ].join("\n"));
    exporter = new Watched(
      "jmp run",
      [JMP, "run", "--exporter-config", config, "--tls-grpc-listener", "127.0.0.1:0", "--tls-grpc-insecure", "--passphrase", PASSPHRASE],
      cleanEnv({}),
    );
    address = await exporter.waitFor((lines) => lines.map((l) => /serving .* on (127\.0\.0\.1:\d+)/.exec(l)?.[1]).find(Boolean), "the listening address");
  });

  afterAll(async () => {
    await exporter?.stop();
    await plug?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the power client label; on, read, off, read and cycle reach the plug; readings are upstream's PowerReading plus the power", async () => {
    const before = plug.requests.length;
    const r = await runPythonJson(CLIENT, [address, "http-power", "--passphrase", PASSPHRASE]);
    expect(r).toEqual({
      client: "jumpstarter_driver_power.client.PowerClient",
      on: null,
      read_on: [{ voltage: 231.4, current: 0.113, power: 26.1 }],
      off: null,
      read_off: [{ voltage: 231.4, current: 0, power: 0 }],
    });
    // Each call answered the plug's Digest challenge: every request sent twice, the second time authorised.
    const authorised = plug.requests.slice(before).filter((q) => q.authorization).map((q) => q.url);
    expect(authorised).toEqual([
      "/rpc/Switch.Set?id=0&on=true", "/rpc/Switch.GetStatus?id=0", "/rpc/Switch.Set?id=0&on=false", "/rpc/Switch.GetStatus?id=0",
      "/rpc/Switch.Set?id=0&on=false", "/rpc/Switch.Set?id=0&on=true",
    ]);
    expect(plug.on).toEqual([true]);
  });
});

const noOpenssl = Bun.which("openssl") ? undefined : "openssl is missing (it comes with ca-certificates)";

describe.skipIf(Boolean(missing ?? noOpenssl))("a Python gRPC client (upstream's shape) reaches `jmp run` over TLS", () => {
  let dir: string;
  let exporter: Watched;
  let address: string;
  let ca: string;

  beforeAll(async () => {
    requireBinary();
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    // A self-signed certificate for 127.0.0.1 is its own CA.
    const made = await run([
      "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
    if (made.code !== 0) throw new Error(`openssl could not make a certificate:\n${made.stderr}`);
    ca = cert;
    ({ exporter, address } = await startDirect(dir, ["--tls-cert", cert, "--tls-key", key]));
  });

  afterAll(async () => {
    await exporter?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("grpc's TLS (ALPN h2, certificate checked against the CA) carries calls and streams", async () => {
    const tls = ["--passphrase", PASSPHRASE, "--ca", ca];
    expect(await runPythonJson(CLIENT, [address, "power", ...tls])).toEqual({ on: null, off: null });
    expect(await runPythonJson(CLIENT, [address, "read", ...tls])).toEqual({ readings: [{ voltage: 0, current: 0 }, { voltage: 5, current: 2 }] });
  });
});

describe.skipIf(Boolean(missing))("a Python gRPC client (upstream's shape) inside `jmp shell` uses the local session's Unix socket", () => {
  let dir: string;
  let config: string;
  /** Runs the client as upstream's code runs in a shell: the session found through $JUMPSTARTER_HOST. */
  const inShell = async (scenario: string) => {
    const r = await run([JMP, "shell", "--exporter-config", config, "--", PYTHON, CLIENT, "env", scenario], cleanEnv({}));
    if (r.code !== 0) throw new Error(`jmp shell … client.py ${scenario} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };

  beforeAll(() => {
    requireBinary();
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    config = join(dir, "local.yaml");
    const echo = hasEcho ? ["  echo:", `    type: ${ECHO_TYPE}`] : [];
    writeFileSync(config, ["export:", "  power:", "    type: MockPower", ...echo, ""].join("\n"));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("calls, streaming calls and status work over h2c with local channel credentials", async () => {
    const report = await inShell("report");
    expect(report.tree.children.power.client).toBe("jumpstarter_driver_power.client.PowerClient");
    expect(await inShell("power")).toEqual({ on: null, off: null });
    expect(await inShell("read")).toEqual({ readings: [{ voltage: 0, current: 0 }, { voltage: 5, current: 2 }] });
    expect((await inShell("status")).status).toBe(4);
  });

  test.skipIf(!hasEcho)("a byte stream echoes over the Unix socket", async () => {
    expect(await inShell("echo")).toMatchObject({ echoed: "hello from python", end: "FRAME_TYPE_GOAWAY", code: "OK" });
  });
});

describe.skipIf(Boolean(missing))("our `j` drives a Python gRPC exporter (upstream's Session shape) on a Unix socket", () => {
  let dir: string;
  let exporter: Watched;
  let env: Record<string, string | undefined>;
  const j = (...args: string[]) => run([J, ...args], env);
  /** The driver calls the Python exporter has run so far (it prints one JSON line per call for the test: its report, not a log). */
  const calls = () =>
    exporter.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { driver: string; method: string; args: unknown[] });
  const waitForCalls = (n: number) =>
    exporter.waitFor((lines) => (lines.filter((l) => l.startsWith("{")).length >= n ? true : undefined), `${n} driver calls`);

  beforeAll(async () => {
    requireBinary();
    dir = mkdtempSync(join(tmpdir(), "jmp-interop-"));
    const socket = join(dir, "session.sock");
    exporter = new Watched("exporter.py", [PYTHON, EXPORTER, socket], cleanEnv({}));
    await exporter.waitFor((lines) => (lines.includes("ready") ? true : undefined), "the socket to be bound");
    expect(existsSync(socket)).toBe(true);
    env = cleanEnv({ JUMPSTARTER_HOST: socket });
  });

  afterAll(async () => {
    await exporter?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("j power on / read / off call the Python MockPower with no arguments", async () => {
    const before = calls().length;
    const on = await j("power", "on");
    expect(on).toMatchObject({ code: 0, stderr: "" });
    const read = await j("power", "read");
    expect(read.code).toBe(0);
    expect(read.stdout.trim().split("\n")).toEqual([
      "voltage=0 V  current=0 A  apparent_power=0 VA",
      "voltage=5 V  current=2 A  apparent_power=10 VA",
    ]);
    const off = await j("power", "off");
    expect(off).toMatchObject({ code: 0, stderr: "" });
    await waitForCalls(before + 3);
    expect(calls().slice(before)).toEqual([
      { driver: "power", method: "on", args: [] },
      { driver: "power", method: "read", args: [] },
      { driver: "power", method: "off", args: [] },
    ]);
  });

  test("an INVALID_ARGUMENT abort reaches the user as the driver's message and a failing exit", async () => {
    const before = calls().length;
    const r = await j("fancy", "brightness", "250");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("brightness must be between 0 and 100, got 250");
    await waitForCalls(before + 1);
    expect(calls().slice(before)).toEqual([{ driver: "fancy", method: "brightness", args: [250] }]);
  });

  test.skipIf(!hasEcho)("j echo forward-tcp carries a TCP connection over the Python exporter's RouterService.Stream", async () => {
    const before = calls().length;
    const forward = new Watched("j echo forward-tcp", [J, "echo", "forward-tcp", "0"], env);
    try {
      const port = await forward.waitFor((lines) => lines.map((l) => /^127\.0\.0\.1:(\d+)$/.exec(l)?.[1]).find(Boolean), "the forwarded port");
      expect(await echoOverTcp(Number(port), "hello through j")).toEqual({ received: "hello through j", ended: true });
      await waitForCalls(before + 2);
    } finally {
      await forward.stop();
    }
    // Upstream's exporter keeps the RPC open until the client ends it; j's exit does.
    await waitForCalls(before + 3);
    const [open, end, ended] = calls().slice(before);
    const echoUuid = (await runPythonJson(CLIENT, [env.JUMPSTARTER_HOST!, "report"])).tree.children.echo.uuid;
    expect(open).toEqual({ driver: "echo", method: "connect", args: [{ kind: "driver", uuid: echoUuid, method: "connect" }] });
    expect(end).toEqual({ driver: "echo", method: "connect: end of stream", args: [] });
    expect(ended).toEqual({ driver: "echo", method: "connect: rpc ended", args: [] });
  });

  test("a driver whose client class we do not have is offered from its methods_description", async () => {
    const help = await j("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^\s*power\b/m);
    expect(help.stdout).toMatch(/^\s*fancy\b/m);
    const fancyHelp = await j("fancy", "--help");
    expect(fancyHelp.code).toBe(0);
    expect(fancyHelp.stdout).toMatch(/blink\s+Blink the LED/);
    const before = calls().length;
    const blink = await j("fancy", "blink");
    expect(blink).toMatchObject({ code: 0, stderr: "" });
    await waitForCalls(before + 1);
    expect(calls().slice(before)).toEqual([{ driver: "fancy", method: "blink", args: [] }]);
  });
});
