/**
 * `npm run release`: the three downloads and SHA256SUMS, each saying its version and
 * commit; the arm64 one run under qemu-aarch64-static (a Raspberry Pi's view); and the
 * x64 one on a machine as bare as a fresh Pi: no node_modules, no serial ports, a
 * home directory it cannot write, run by an unprivileged user from an empty directory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json";
import { ROOT, tempDir, type Result } from "./helpers.ts";

const TARGETS = ["jmp-linux-x64", "jmp-linux-x64-baseline", "jmp-linux-arm64"];
const PACKAGE = `jmp-${pkg.version}.tgz`;
const NOBODY = 65534;

const work = tempDir("jmp-release-");
const dist = join(work.path, "dist");
const commit = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: ROOT }).stdout.toString().trim();

/** A lab machine's layout: the executable alone, a read-only home, an empty working directory. */
const machine = {
  home: join(work.path, "home"),
  cwd: join(work.path, "empty"),
  bin: join(work.path, "bin"),
  config: join(work.path, "sim-board.yaml"),
};

beforeAll(() => {
  const r = Bun.spawnSync(["npm", "run", "--silent", "release", "--", "--outdir", dist], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`npm run release failed:\n${r.stderr.toString()}${r.stdout.toString()}`);
  console.log(r.stdout.toString().trimEnd());
  for (const dir of [machine.home, machine.cwd, machine.bin]) mkdirSync(dir);
  // mkdtemp makes 0700 directories; the unprivileged user must reach the files.
  for (const dir of [work.path, dist, machine.cwd, machine.bin]) chmodSync(dir, 0o755);
  chmodSync(machine.home, 0o555);
  copyFileSync(join(ROOT, "examples/sim-board.yaml"), machine.config);
  chmodSync(machine.config, 0o644);
}, 300_000);

afterAll(() => work.remove());

/** Runs a command as the unprivileged user on the bare machine, with a minimal environment. */
async function onMachine(argv: string[], env: Record<string, string> = {}): Promise<Result> {
  const proc = Bun.spawn(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "env", "-i",
    "PATH=/usr/bin:/bin", `HOME=${machine.home}`, "NO_COLOR=1", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], {
    cwd: machine.cwd,
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe("npm run release", () => {
  test("builds the three executables, the library package and a SHA256SUMS that sha256sum accepts", () => {
    expect(readdirSync(dist).sort()).toEqual(["SHA256SUMS", PACKAGE, ...TARGETS].sort());
    const check = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: dist });
    expect(check.stdout.toString()).toBe([...TARGETS, PACKAGE].map((t) => `${t}: OK\n`).join(""));
    expect(check.exitCode).toBe(0);
  });

  test("the executables are for the platforms their names say", () => {
    // e_machine in the ELF header.
    const machineOf = (file: string) => {
      const header = Buffer.alloc(20);
      const fd = openSync(join(dist, file), "r");
      readSync(fd, header, 0, 20, 0);
      closeSync(fd);
      return header.readUInt16LE(18);
    };
    const EM_X86_64 = 62;
    const EM_AARCH64 = 183;
    expect(TARGETS.map(machineOf)).toEqual([EM_X86_64, EM_X86_64, EM_AARCH64]);
  });

  test.each(["jmp-linux-x64", "jmp-linux-x64-baseline"])("%s says its version and commit", (file) => {
    const r = Bun.spawnSync([join(dist, file), "version"]);
    expect(r.stdout.toString()).toBe(`jmp ${pkg.version} (${commit}, bun ${Bun.version}, linux-x64)\n`);
  });
});

describe("jmp-linux-arm64 under qemu-aarch64-static", () => {
  // The arm64 runtime links glibc: Debian's libc6-arm64-cross provides it for qemu.
  const qemu = ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"];
  // In the session the shell finds the arm64 `j` first on its PATH; with no binfmt_misc
  // entry for aarch64 (as in most containers), the emulator must be named to run it.
  const binfmt = existsSync("/proc/sys/fs/binfmt_misc/qemu-aarch64");
  const j = binfmt ? "j" : `qemu-aarch64-static -L /usr/aarch64-linux-gnu "$(command -v j)"`;
  const arm64 = () => join(dist, "jmp-linux-arm64");
  let started = 0;
  beforeAll(() => {
    started = performance.now();
  });
  afterAll(() => console.log(`arm64 smoke test under qemu: ${((performance.now() - started) / 1000).toFixed(1)} s`));

  test("jmp version", async () => {
    const r = await onMachine([...qemu, arm64(), "version"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`jmp ${pkg.version} (${commit}, bun ${Bun.version}, linux-arm64)\n`);
  }, 60_000);

  test("jmp driver list", async () => {
    const r = await onMachine([...qemu, arm64(), "driver", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^MockPower\s+jumpstarter_driver_power\.driver\.MockPower\s+built-in/m);
    expect(r.stdout).toMatch(/^PySerial\s/m);
  }, 60_000);

  test("jmp shell with the simulated board: j power on, then a reading", async () => {
    const r = await onMachine([...qemu, arm64(), "shell", "--exporter-config", machine.config, "--", "sh", "-c", `${j} power on && ${j} power read`]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^voltage=[\d.]+ V {2}current=[\d.]+ A/);
    expect(r.code).toBe(0);
  }, 120_000);
});

describe("jmp-linux-x64 on a bare machine (read-only home, no node_modules, no serial ports)", () => {
  const exe = () => join(machine.bin, "jmp");
  beforeAll(() => copyFileSync(join(dist, "jmp-linux-x64"), exe()));

  test("the home directory really is read-only for the user", async () => {
    const r = await onMachine(["sh", "-c", `touch "$HOME/probe"`]);
    expect(r.code).not.toBe(0);
  });

  test("version, driver list and a local shell work", async () => {
    expect((await onMachine([exe(), "version"])).stdout).toStartWith(`jmp ${pkg.version} (${commit}`);
    expect((await onMachine([exe(), "driver", "list"])).stdout).toContain("DutSim");
    const r = await onMachine([exe(), "shell", "--exporter-config", machine.config, "--", "sh", "-c", "j power on && j power read"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toStartWith("voltage=");
  }, 30_000);

  test("a command that must write a config says it cannot, and where", async () => {
    const r = await onMachine([exe(), "config", "exporter", "create", "bench"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`permission denied`);
    expect(r.stderr).toContain(machine.home);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a serial port that is not there is named, only by the config that needs it", async () => {
    const config = join(work.path, "serial.yaml");
    writeFileSync(config, [
      "apiVersion: jumpstarter.dev/v1alpha1",
      "kind: ExporterConfig",
      "metadata: {namespace: default, name: pi}",
      "export:",
      "  power: {type: MockPower}",
      "  serial: {type: PySerial, config: {url: /dev/ttyUSB-absent}}",
      "",
    ].join("\n"));
    chmodSync(config, 0o644);
    const r = await onMachine([exe(), "shell", "--exporter-config", config, "--", "j", "power", "on"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("export.serial.config: serial device /dev/ttyUSB-absent does not exist");
  });
});

describe("the library package in a project of the user's own", () => {
  test("bun add ./jmp-<version>.tgz installs it, with no tests inside, and a first test against jmp/testing passes", async () => {
    const listing = Bun.spawnSync(["tar", "-tzf", join(dist, PACKAGE)]).stdout.toString().split("\n");
    expect(listing).toContain("package/src/api/testing.ts");
    expect(listing).toContain("package/drivers/power/client.ts");
    expect(listing.filter((f) => f.endsWith(".test.ts"))).toEqual([]);

    const project = join(work.path, "mylab");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "mylab", private: true }));
    const add = Bun.spawnSync([process.execPath, "add", join(dist, PACKAGE)], { cwd: project, stdout: "pipe", stderr: "pipe" });
    expect({ code: add.exitCode, stderr: add.exitCode ? add.stderr.toString() : "" }).toEqual({ code: 0, stderr: "" });
    // A driver of the user's own, served in-process and driven through the real protocol.
    writeFileSync(join(project, "lamp.test.ts"), [
      `import { expect, test } from "bun:test";`,
      `import { Driver, exported, serve } from "jmp/testing";`,
      `class Lamp extends Driver {`,
      `  static override readonly client = "jumpstarter_driver_power.client.PowerClient";`,
      `  lit = false;`,
      `  @exported async on() { this.lit = true; }`,
      `}`,
      `test("the lamp switches on", async () => {`,
      `  const lamp = new Lamp({});`,
      `  await using lab = await serve(lamp);`,
      `  await lab.client.call("on");`,
      `  expect(lamp.lit).toBe(true);`,
      `});`,
    ].join("\n"));
    const run = Bun.spawnSync([process.execPath, "test"], { cwd: project, stdout: "pipe", stderr: "pipe" });
    const out = run.stderr.toString();
    expect({ code: run.exitCode, out: run.exitCode ? out : "" }).toEqual({ code: 0, out: "" });
    expect(out).toContain("1 pass");
  }, 120_000);
});
