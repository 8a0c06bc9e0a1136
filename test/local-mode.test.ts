/**
 * Local mode end to end, as a user runs it: one exporter config in upstream's
 * format with a power switch, a serial port on a real pty, a TCP service, a shell
 * driver and a simulated board, driven by `j` inside `jmp shell`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { createServer, connect, type Server } from "node:net";
import { ptyPeer, type PtyPeer } from "../drivers/serial/pty-peer.ts";
import { eventually } from "../src/api/eventually.ts";
import { jmp, JMP, tempDir, whileRunning } from "./helpers.ts";

const dir = tempDir("jmp-local-");
let peer: PtyPeer;
let echo: Server;
let echoPort = 0;
let config = "";

beforeAll(async () => {
  peer = await ptyPeer();
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
  echoPort = (echo.address() as { port: number }).port;
  config = dir.file("lab.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: bench-1
description: A bench with every kind of driver
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
  serial:
    type: jumpstarter_driver_pyserial.driver.PySerial
    config:
      url: ${peer.path}
      baudrate: 9600
  net:
    type: jumpstarter_driver_network.driver.TcpNetwork
    config:
      host: 127.0.0.1
      port: ${echoPort}
  shell:
    type: jumpstarter_driver_shell.driver.Shell
    config:
      methods:
        greet: echo "hello $1"
        fail:
          command: echo "failing" >&2; exit 3
          description: Always fails
  dut:
    type: DutSim
    config:
      hostname: bench-dut
`);
});

afterAll(async () => {
  await peer.close();
  echo.close();
  dir.remove();
});

const shell = (script: string, opts: { stdin?: string } = {}) =>
  jmp(["shell", "--exporter-config", config, "--", "sh", "-c", script], opts);

test("power: on, off, cycle --wait and read", async () => {
  const r = await shell("j power on && j power off && j power cycle --wait 0.2 && j power read");
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Power cycling with 0.2 seconds wait time...");
  expect(r.stdout).toContain("voltage=0 V  current=0 A");
  expect(r.stdout).toContain("voltage=5 V  current=2 A");
});

test("j --help lists every driver of the config", async () => {
  const r = await shell("j --help");
  expect(r.code).toBe(0);
  for (const name of ["power", "serial", "net", "shell", "dut"]) expect(r.stdout).toContain(name);
  expect(r.stdout).toContain("A bench with every kind of driver");
  const sub = await shell("j shell --help");
  expect(sub.stdout).toContain("Always fails");
  expect(sub.stdout).not.toContain("$bunfs");
});

describe("serial on a real pty", () => {
  test("expect sends, then waits for the device's answer", async () => {
    const before = (await peer.received(0)).byteLength;
    const running = shell(`j serial expect pong --send 'ping\\r' --timeout 10`);
    await peer.received(before + 5, 10_000);
    peer.send("pong\r\n");
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("pong");
    expect(new TextDecoder().decode((await peer.received(before + 5)).subarray(before))).toBe("ping\r");
  });

  test("pipe --no-output sends stdin to the device and exits at its end", async () => {
    const before = (await peer.received(0)).byteLength;
    const r = await shell("j serial pipe --no-output", { stdin: "to the device\n" });
    expect(r.code).toBe(0);
    const got = await peer.received(before + 14);
    expect(new TextDecoder().decode(got.subarray(before))).toBe("to the device\n");
  });

  test("expect times out with the last lines received", async () => {
    peer.send("booting...\r\nalmost\r\n");
    const r = await shell("j serial expect 'never-seen' --timeout 1");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("never-seen");
    expect(r.stderr).toContain("almost");
  });
});

describe("network", () => {
  test("address names the service, as upstream prints it", async () => {
    const r = await shell("j net address && j net address --port");
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([`127.0.0.1:${echoPort}`, `${echoPort}`]);
  });

  test("forward-tcp: every local connection reaches the service; SIGTERM ends it cleanly", async () => {
    const proc = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", "exec j net forward-tcp"], {
      stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
    });
    let out = "";
    void (async () => {
      for await (const c of proc.stdout) out += new TextDecoder().decode(c);
    })();
    // The address it prints on stdout is what a user connects to.
    const address = await eventually(() => {
      const m = /127\.0\.0\.1:(\d+)/.exec(out);
      expect(m).not.toBeNull();
      return m![1]!;
    }, { what: "forward-tcp to print its address", interval: 20, signal: whileRunning(proc, "jmp shell", () => out) });
    const roundTrip = (text: string) => new Promise<string>((resolve, reject) => {
      const s = connect(Number(address), "127.0.0.1", () => s.end(text));
      let got = "";
      s.on("data", (d) => (got += d));
      s.on("end", () => resolve(got));
      s.on("error", reject);
    });
    const answers = await Promise.all(["one", "two", "three"].map((t) => roundTrip(t.repeat(1000))));
    expect(answers).toEqual(["one".repeat(1000), "two".repeat(1000), "three".repeat(1000)]);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });
});

describe("shell driver", () => {
  test("a method's output and arguments", async () => {
    const r = await shell("j shell greet world");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello world\n");
  });

  test("a failing method's exit code passes through j and jmp shell", async () => {
    const r = await shell("j shell fail");
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("failing\n");
  });
});

test("simulated board: power on, boot, log in, run a command", async () => {
  const r = await shell([
    "j dut power on",
    "j dut console expect 'login:' --timeout 15",
    "j dut console expect '# ' --send 'root\\r' --timeout 10",
    "j dut console expect '# ' --send 'uname -n\\r' --timeout 10",
    "j dut power off",
  ].join(" && "));
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("bench-dut login:");
  expect(r.stdout).toMatch(/uname -n\r?\n\r?bench-dut\r?\n/);
});

describe("jmp shell itself", () => {
  test("returns the command's exit code and removes its socket", async () => {
    const r = await shell('echo "$JUMPSTARTER_HOST"; exit 7');
    expect(r.code).toBe(7);
    const socket = r.stdout.trim();
    expect(socket).toEndWith(".sock");
    expect(existsSync(socket)).toBe(false);
  });

  test("finds a config by alias in the user's config directory", async () => {
    const home = tempDir("jmp-home-");
    try {
      const create = await jmp(["config", "exporter", "create", "bench", "--from", config], { env: { JMP_CLIENT_CONFIG_HOME: home.path } });
      expect(create.code).toBe(0);
      expect(create.stdout.trim()).toBe(`${home.path}/exporters/bench.yaml`);
      const list = await jmp(["config", "exporter", "list", "-o", "name"], { env: { JMP_CLIENT_CONFIG_HOME: home.path } });
      expect(list.stdout.split("\n")).toContain("bench");
      const r = await jmp(["shell", "--exporter", "bench", "--", "j", "power", "on"], { env: { JMP_CLIENT_CONFIG_HOME: home.path } });
      expect(r.code).toBe(0);
      const del = await jmp(["config", "exporter", "delete", "bench"], { env: { JMP_CLIENT_CONFIG_HOME: home.path } });
      expect(del.code).toBe(0);
    } finally {
      home.remove();
    }
  });

  test("--exporter-logs shows driver logs", async () => {
    const r = await jmp(["shell", "--exporter-logs", "--exporter-config", config, "--", "j", "power", "on"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("power on");
  });
});

test("the example config in examples/ loads and answers", async () => {
  const r = await jmp(["shell", "--exporter-config", `${import.meta.dir}/../examples/lab.yaml`, "--", "sh", "-c", "j power on && j --help"]);
  expect(r.code).toBe(0);
  for (const name of ["power", "serial", "ssh", "shell", "dut", "console"]) expect(r.stdout).toContain(name);
});
