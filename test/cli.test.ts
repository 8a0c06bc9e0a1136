/** The command line itself: help, version, errors, bad configs — run as users run it. */
import { afterAll, describe, expect, test } from "bun:test";
import { J, jmp, tempDir } from "./helpers.ts";

const dir = tempDir();
afterAll(() => dir.remove());

test("jmp --help lists the commands and exits 0", async () => {
  const r = await jmp(["--help"]);
  expect(r.code).toBe(0);
  for (const noun of ["shell", "run", "exporter", "driver", "config", "version", "completion"]) expect(r.stdout).toContain(noun);
});

test("jmp version names the version and commit; -o json parses", async () => {
  const text = await jmp(["version"]);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/^jmp \d+\.\d+\.\d+ \([0-9a-f]{7,}|unknown/);
  const json = JSON.parse((await jmp(["version", "-o", "json"])).stdout);
  expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
  expect(json.platform).toBe(`${process.platform}-${process.arch}`);
});

test("unknown commands and flags are rejected with a hint and exit 2", async () => {
  const cmd = await jmp(["shel"]);
  expect(cmd.code).toBe(2);
  expect(cmd.stderr).toContain("unknown command 'shel'");
  const flag = await jmp(["shell", "--exporter-confg", "x.yaml"]);
  expect(flag.code).toBe(2);
  expect(flag.stderr).toContain("did you mean --exporter-config?");
});

test("jmp driver list shows upstream type paths; -o name and -o json work", async () => {
  const table = await jmp(["driver", "list"]);
  expect(table.code).toBe(0);
  expect(table.stdout).toContain("jumpstarter_driver_power.driver.MockPower");
  const names = (await jmp(["driver", "list", "-o", "name"])).stdout.trim().split("\n");
  expect(names).toContain("MockPower");
  const json = JSON.parse((await jmp(["driver", "list", "-o", "json"])).stdout);
  expect(json.find((d: { name: string }) => d.name === "MockPower").client).toBe("jumpstarter_driver_power.client.PowerClient");
  const bad = await jmp(["driver", "list", "-o", "xml"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("'-o' must be one of table, json, yaml, name");
});

test("j outside a shell says what is missing", async () => {
  const env = { JUMPSTARTER_HOST: "" };
  const r = await jmp(["power", "on"], { exe: J, env });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("run it inside 'jmp shell'");
  const same = await jmp(["j", "power", "on"], { env });
  expect(same.stderr).toBe(r.stderr);
});

test("j reports an unreachable session clearly", async () => {
  const r = await jmp(["power", "on"], { exe: J, env: { JUMPSTARTER_HOST: `${dir.path}/nothing.sock` } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`cannot reach the exporter at socket ${dir.path}/nothing.sock`);
});

test("completion scripts for bash, zsh and fish", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await jmp(["completion", shell]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("shell");
  }
  const bash = (await jmp(["completion", "bash"])).stdout;
  const check = Bun.spawnSync(["bash", "-n"], { stdin: new TextEncoder().encode(bash) });
  expect(check.exitCode).toBe(0);
  expect((await jmp(["completion", "tcsh"])).code).toBe(2);
});

describe("bad exporter configs fail once, at load, naming file and key", () => {
  const cases: [string, string, string][] = [
    ["unknown type", "export:\n  power:\n    type: MockPowr\n", "export.power.type: unknown driver type 'MockPowr'; did you mean 'MockPower'?"],
    ["unknown config key", "export:\n  power:\n    type: MockPower\n    config:\n      volts: 5\n", "export.power.config.volts: unknown key"],
    ["YAML syntax", "export:\n  power: [\n", "line 3, column 1: invalid YAML"],
    ["dangling ref", "export:\n  p:\n    ref: nope.x\n", "export.p.ref: no driver at 'nope.x'"],
    ["misspelt top-level key", "exprt:\n  p: {}\n", "exprt: unknown key (did you mean 'export'?"],
    ["node with nothing", "export:\n  p: {}\n", "export.p: expected 'type' (a driver), 'ref' (another entry) or 'children'"],
    ["mistyped value", "export:\n  p:\n    type: 5\n", "export.p.type: expected a non-empty string, got number 5"],
    ["empty file", "", "the file is empty"],
  ];
  for (const [name, yaml, message] of cases) {
    test(name, async () => {
      const file = dir.file(`${name.replace(/ /g, "-")}.yaml`, yaml);
      const r = await jmp(["shell", "--exporter-config", file, "--", "true"]);
      expect(r.code).toBe(2);
      expect(r.stderr.startsWith(`Error: ${file}: ${message}`)).toBe(true);
      expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
      expect(r.stderr).not.toContain("    at ");
    });
  }

  test("missing file", async () => {
    const r = await jmp(["shell", "--exporter-config", `${dir.path}/none.yaml`, "--", "true"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir.path}/none.yaml: no such file`);
  });

  test("unknown alias names where it looked", async () => {
    const r = await jmp(["shell", "--exporter", "lab9", "--", "true"], { env: { JMP_CLIENT_CONFIG_HOME: dir.path } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir.path}/exporters/lab9.yaml`);
  });
});
