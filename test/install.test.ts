/**
 * `jmp exporter install` / `jmp controller install`: a dry run writes nothing; with
 * `--root DIR --apply` the units land in a scratch root, where systemd's own tools
 * (systemd-sysusers, systemctl --root, systemd-analyze verify) accept them. Also: what
 * the service logs to journald is one plain line per event.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../src/api/eventually.ts";
import { JMP, ROOT, jmp, tempDir, whileRunning } from "./helpers.ts";

const shipped = (path: string) => readFileSync(join(ROOT, "packaging", path), "utf8");
const EXPORTER_UNIT = "etc/systemd/system/jmp-exporter@.service";
const CONTROLLER_UNIT = "etc/systemd/system/jmp-controller.service";
const SYSUSERS = "etc/sysusers.d/jumpstarter.conf";

let scratch: ReturnType<typeof tempDir>;
afterEach(() => scratch?.remove());

function run(cmd: string[]) {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

describe("jmp exporter install", () => {
  test("a dry run prints the unit, the user entry and the commands, and writes nothing", async () => {
    scratch = tempDir("jmp-install-");
    const r = await jmp(["exporter", "install", "pi", "--root", scratch.path]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("Dry run: nothing is written. Add --apply to write these files.\n");
    expect(r.stdout).toContain(`${scratch.path}/${EXPORTER_UNIT} (new, mode 0644):\n`);
    expect(r.stdout).toContain("  | ExecStart=/usr/local/bin/jmp run --exporter-config /etc/jumpstarter/exporters/%i.yaml\n");
    expect(r.stdout).toContain("  | m jumpstarter dialout\n");
    expect(r.stdout).toContain(`Then, as root:\n  systemd-sysusers --root ${scratch.path} jumpstarter.conf\n  systemctl --root ${scratch.path} enable jmp-exporter@pi\n`);
    expect(run(["find", scratch.path, "-mindepth", "1"]).out).toBe("");
  });

  test("without --root the commands are the ones for this machine", async () => {
    const r = await jmp(["exporter", "install", "pi"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Then, as root:\n  systemd-sysusers jumpstarter.conf\n  systemctl daemon-reload\n  systemctl enable --now jmp-exporter@pi\n");
    expect(r.stdout).toContain("/etc/systemd/system/jmp-exporter@.service (");
  });

  test("--root DIR --apply writes the shipped files; systemd's tools accept them there", async () => {
    scratch = tempDir("jmp-install-");
    const root = scratch.path;
    const r = await jmp(["exporter", "install", "pi", "--root", root, "--apply"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${root}/${EXPORTER_UNIT}\nwrote ${root}/${SYSUSERS}\ncreated ${root}/etc/jumpstarter/exporters/\n`);
    expect(readFileSync(join(root, EXPORTER_UNIT), "utf8")).toBe(shipped("systemd/jmp-exporter@.service"));
    expect(readFileSync(join(root, SYSUSERS), "utf8")).toBe(shipped("sysusers.d/jumpstarter.conf"));
    expect(statSync(join(root, EXPORTER_UNIT)).mode & 0o777).toBe(0o644);

    // The commands it printed, as printed.
    const sysusers = run(["systemd-sysusers", "--root", root, "jumpstarter.conf"]);
    expect(sysusers.code).toBe(0);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^jumpstarter:x:\d+:\d+:Jumpstarter services:\/var\/lib\/jumpstarter:\/usr\/sbin\/nologin$/m);
    const group = readFileSync(join(root, "etc/group"), "utf8");
    expect(group).toMatch(/^dialout:x:\d+:jumpstarter$/m);
    expect(group).toMatch(/^plugdev:x:\d+:jumpstarter$/m);
    const enable = run(["systemctl", "--root", root, "enable", "jmp-exporter@pi"]);
    expect(enable.code).toBe(0);
    const wants = join(root, "etc/systemd/system/multi-user.target.wants/jmp-exporter@pi.service");
    expect(lstatSync(wants).isSymbolicLink()).toBe(true);
    expect(readlinkSync(wants)).toBe("/etc/systemd/system/jmp-exporter@.service");
  });

  test("a second --apply changes nothing and says so", async () => {
    scratch = tempDir("jmp-install-");
    await jmp(["exporter", "install", "--root", scratch.path, "--apply"]);
    const r = await jmp(["exporter", "install", "--root", scratch.path, "--apply"]);
    expect(r.stdout).toContain(`unchanged ${scratch.path}/${EXPORTER_UNIT}\nunchanged ${scratch.path}/${SYSUSERS}\nexists ${scratch.path}/etc/jumpstarter/exporters/\n`);
  });

  test("it says what is missing before the service can start, until it is there", async () => {
    scratch = tempDir("jmp-install-");
    const root = scratch.path;
    const before = await jmp(["exporter", "install", "pi", "--root", root]);
    expect(before.stdout).toContain(`${root}/usr/local/bin/jmp is missing: install this executable there first: install -m 0755 ${JMP} ${root}/usr/local/bin/jmp\n`);
    expect(before.stdout).toContain(`${root}/etc/jumpstarter/exporters/pi.yaml is missing: put the exporter config there`);
    mkdirSync(join(root, "usr/local/bin"), { recursive: true });
    copyFileSync(JMP, join(root, "usr/local/bin/jmp"));
    mkdirSync(join(root, "etc/jumpstarter/exporters"), { recursive: true });
    copyFileSync(join(ROOT, "examples/sim-board.yaml"), join(root, "etc/jumpstarter/exporters/pi.yaml"));
    const after = await jmp(["exporter", "install", "pi", "--root", root]);
    expect(after.stdout).not.toContain("Before it can start");
  });

  test("a name that would leave /etc/jumpstarter/exporters is refused", async () => {
    const r = await jmp(["exporter", "install", "../pi"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invalid exporter name '../pi'");
  });

  test("writing where it may not says so in one line, with what to do", async () => {
    scratch = tempDir("jmp-install-");
    chmodSync(scratch.path, 0o755);
    const target = join(scratch.path, "root");
    mkdirSync(target, { mode: 0o755 });
    copyFileSync(JMP, join(scratch.path, "jmp"));
    const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", join(scratch.path, "jmp"), "exporter", "install", "--root", target, "--apply"], {
      env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent", NO_COLOR: "1" },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toBe(`Error: cannot write ${target}/${EXPORTER_UNIT}: permission denied; run it as root, or try it in a scratch directory with --root DIR\n`);
    expect(existsSync(join(target, "etc"))).toBe(false);
  });
});

describe("jmp controller install", () => {
  test("--root DIR --apply writes the controller unit; systemctl enables it there", async () => {
    scratch = tempDir("jmp-install-");
    const root = scratch.path;
    const dry = await jmp(["controller", "install", "--root", root]);
    expect(dry.stdout).toContain("  | ExecStart=/usr/local/bin/jmp controller run --data-dir /var/lib/jumpstarter/controller $JMP_CONTROLLER_ARGS\n");
    const r = await jmp(["controller", "install", "--root", root, "--apply"]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(root, CONTROLLER_UNIT), "utf8")).toBe(shipped("systemd/jmp-controller.service"));
    expect(r.stdout).toContain(`Next, as root:\n  systemd-sysusers --root ${root} jumpstarter.conf\n  systemctl --root ${root} enable jmp-controller\n`);
    expect(run(["systemctl", "--root", root, "enable", "jmp-controller"]).code).toBe(0);
    // The link points at /etc/… as seen from inside the root.
    expect(readlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/jmp-controller.service"))).toBe("/etc/systemd/system/jmp-controller.service");
  });
});

describe("the shipped units", () => {
  // systemd-analyze checks every directive; the executable must exist, so point it at ours.
  test.each(["jmp-exporter@.service", "jmp-controller.service"])("%s passes systemd-analyze verify", (unit) => {
    scratch = tempDir("jmp-units-");
    const file = join(scratch.path, unit.replace("@.", "@pi."));
    writeFileSync(file, shipped(`systemd/${unit}`).replaceAll("/usr/local/bin/jmp", JMP));
    const r = run(["systemd-analyze", "verify", "--man=no", file]);
    expect(r.out).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("logs under a service manager", () => {
  test("with stderr not a terminal: no colours, one `LEVEL name: message` line per event", async () => {
    const proc = Bun.spawn([JMP, "run", "--exporter-config", join(ROOT, "examples/sim-board.yaml"), "--tls-grpc-listener", "127.0.0.1:0", "--tls-grpc-insecure"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" },
      stdout: "pipe",
      stderr: "pipe",
    });
    let said = "";
    const stderr = (async () => {
      for await (const chunk of proc.stderr) said += new TextDecoder().decode(chunk);
      return said;
    })();
    // The log is the subject here: once it says the exporter serves, stop it and read every line.
    await eventually(() => expect(said).toContain("serving"), { what: "the exporter to log that it serves", interval: 20, signal: whileRunning(proc, "jmp run", () => said) });
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(143);
    const lines = (await stderr).trimEnd().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line).toMatch(/^(DEBUG|INFO|WARN|ERROR) [\w.-]+: \S/);
    expect(await stderr).not.toContain("\x1b[");
    expect(lines.at(-1)).toContain("SIGTERM");
  });
});
