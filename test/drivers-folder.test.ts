/**
 * Drivers folders end to end, as a lab uses them: driver files dropped in a folder
 * (no build step) are listed by `jmp driver list` and driven by `j` inside
 * `jmp shell`, with their own client where the allow-list permits and the generic
 * client elsewhere; a broken file is reported naming it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { JMP, jmp, ROOT, tempDir } from "./helpers.ts";

const FIXTURES = join(ROOT, "test/fixtures/drivers");
const dir = tempDir("jmp-drivers-");
afterAll(() => dir.remove());

// Nothing from the machine's own drivers folders may leak in.
const isolated = { JMP_DRIVERS_DIR: "", JMP_CLIENT_CONFIG_HOME: "", XDG_CONFIG_HOME: join(dir.path, "xdg") };
const withFixtures = { ...isolated, JMP_DRIVERS_DIR: FIXTURES };

const config = dir.file("lab.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
export:
  relay:
    type: relay.RelayBoard
    config:
      channels: 3
  lamp:
    type: lamp.Lamp
    config:
      color: red
`);

/** Runs a shell command line inside `jmp shell` on the lab config. */
const inShell = (script: string, env: Record<string, string> = withFixtures, args: string[] = []) =>
  jmp(["shell", ...args, "--exporter-config", config, "--", "sh", "-c", script], { env });

/** A folder of driver files, created fresh. */
function driversFolder(name: string, files: Record<string, string>): string {
  const path = join(dir.path, name);
  mkdirSync(path, { recursive: true });
  for (const [f, text] of Object.entries(files)) dir.file(join(name, f), text);
  return path;
}

const fan = (cls: string) => `import { Driver, exported } from "@jumpstarter/driver";
export class ${cls} extends Driver {
  static override readonly client = "fan.FanClient";
  static override readonly summary = "a fan";
  @exported async spin() { return "whirr"; }
}
`;

describe("jmp driver list", () => {
  test("lists the driver files of a folder beside the built-ins, with their source", async () => {
    const r = await jmp(["driver", "list", "--drivers-dir", FIXTURES], { env: isolated });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(new RegExp(`relay\\.RelayBoard +relay\\.RelayBoard +${join(FIXTURES, "relay.ts")} +a relay board`));
    expect(r.stdout).toContain(join(FIXTURES, "lamp.js"));
    expect(r.stdout).toMatch(/MockPower +jumpstarter_driver_power\.driver\.MockPower +built-in/);
    const json = JSON.parse((await jmp(["driver", "list", "-o", "json"], { env: withFixtures })).stdout);
    const relay = json.find((d: { name: string }) => d.name === "relay.RelayBoard");
    expect(relay).toMatchObject({ client: "relay.RelayClient", source: join(FIXTURES, "relay.ts") });
    expect(relay.config.channels).toBe("an integer from 1 to 16; number of relays (default 4)");
  });

  test("searches --drivers-dir (repeatable), JMP_DRIVERS_DIR, ./drivers and the user's folder; the first of two same-named files wins", async () => {
    const flagA = driversFolder("flag-a", { "fanA.ts": fan("A") });
    const flagB = driversFolder("flag-b", { "fanB.ts": fan("B") });
    const env = driversFolder("env", { "fanC.ts": fan("C"), "fanA.ts": "throw new Error('shadowed: never loaded')" });
    driversFolder("cwd/drivers", { "fanD.ts": fan("D") });
    driversFolder("xdg-search/jumpstarter/drivers", { "fanE.ts": fan("E") });
    const cmd = `cd ${join(dir.path, "cwd")} && exec ${JMP} driver list -o name --drivers-dir ${flagA} --drivers-dir=${flagB}`;
    const r = await jmp(["-c", cmd], { exe: "sh", env: { ...isolated, JMP_DRIVERS_DIR: env, XDG_CONFIG_HOME: join(dir.path, "xdg-search") } });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").filter((n) => n.startsWith("fan"))).toEqual(["fanA.A", "fanB.B", "fanC.C", "fanD.D", "fanE.E"]);
    expect(r.stderr).toBe(`note: ${join(env, "fanA.ts")} is not loaded: ${join(flagA, "fanA.ts")} has the same name and comes first\n`);
  });

  test("a --drivers-dir that does not exist is an error naming it", async () => {
    const r = await jmp(["driver", "list", "--drivers-dir", join(dir.path, "nowhere")], { env: isolated });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: --drivers-dir ${join(dir.path, "nowhere")}: no such directory\n`);
  });

  test("in jmp's own source tree, ./drivers holds the built-ins and is not loaded again", async () => {
    const r = await jmp(["-c", `cd ${ROOT} && exec ${JMP} driver list -o json`], { exe: "sh", env: isolated });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout).every((d: { source: string }) => d.source === "built-in")).toBe(true);
  });

  test("a broken driver file is reported by name, the good drivers are still listed, and the exit code is 1", async () => {
    const path = driversFolder("broken-list", {
      "fan.ts": fan("Fan"),
      "pump.ts": `import { Driver } from "@jumpstarter/driver";\nexport class Pump extends Driver {\n  static override readonly client = "pump.PumpClient";\n  run() { return (; }\n}\n`,
      "valve.js": `throw new Error("valve controller not found on /dev/ttyUSB3");\n`,
    });
    const r = await jmp(["driver", "list", "--drivers-dir", path], { env: isolated });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("fan.Fan");
    expect(r.stdout).not.toContain("pump.Pump");
    expect(r.stderr).toBe(
      `Error: ${join(path, "pump.ts")}: syntax error at line 4, column 19: Unexpected ;\n` +
        `Error: ${join(path, "valve.js")}: Error: valve controller not found on /dev/ttyUSB3 (at line 1)\n`,
    );
  });
});

describe("driving driver files with j", () => {
  test("the driver file's own client gives its j commands (a local shell allows every client)", async () => {
    const r = await inShell(`j relay on 2 && j relay status && printf '1 on\\n9 on\\n1 maybe\\n' | j relay console && j relay off 2 && j relay status`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe([
      "1: off", "2: on", "3: off",
      "ok 1 on", "error: channel must be a whole number from 1 to 3, got 9", "error: expected '<channel> on|off', got '1 maybe'",
      "1: on", "2: off", "3: off", "",
    ].join("\n"));
  });

  test("where the allow-list does not permit it, the generic client offers every exported method", async () => {
    const r = await inShell([
      "export JMP_DRIVERS_ALLOW='jumpstarter_driver_*'",
      "j relay --help",
      "j relay set 3 true && j relay get 3 && j relay states",
      "printf '2 on\\n' | j relay console",
      "JMP_DRIVERS_ALLOW='relay.*' j relay status",
    ].join("\n"), { ...withFixtures, NO_COLOR: "1" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("driver with client relay.RelayClient (generic client)");
    expect(r.stdout).toContain("USAGE j relay set|get|states|console");
    expect(r.stdout).toContain("Switch a channel on or off");
    expect(r.stdout).toContain([
      "true", '{"channel":1,"on":false}', '{"channel":2,"on":false}', '{"channel":3,"on":true}', "ok 2 on",
      "1: off", "2: on", "3: on", "",
    ].join("\n"));
  });

  test("a plain .js driver file without decorators works", async () => {
    const r = await inShell("j lamp on && j lamp state && j lamp blink 3 && j lamp blink 0");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(['{"on":true,"color":"red"}', "off", "on", "off", ""].join("\n"));
    expect(r.stderr).toBe("Error: blink: times must be a whole number of at least 1, got 0\n");
  });

  test("--drivers-dir reaches the exporter and the shell's j, even after a cd", async () => {
    const r = await inShell("cd / && j relay on 1 && j relay status", isolated, ["--drivers-dir", FIXTURES]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1: on\n2: off\n3: off\n");
  });
});

describe("broken driver files and exporter configs", () => {
  test("a config naming a broken driver file fails with the config file, key path and driver file", async () => {
    const path = driversFolder("broken-config", { "pump.ts": "export const = 1;\n", "fan.ts": `${fan("Fan")}export class Helper {}\n` });
    const cfg = dir.file("pump.yaml", "export:\n  cooling:\n    children:\n      pump:\n        type: pump.Pump\n");
    const env = { ...isolated, JMP_DRIVERS_DIR: path };
    const r = await jmp(["shell", "--exporter-config", cfg, "--", "true"], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: ${cfg}: export.cooling.children.pump.type: driver file ${join(path, "pump.ts")} failed to load: ` +
      `syntax error at line 1, column 14: Expected identifier but found "=" (and 2 more)\n`);
    const helper = dir.file("helper.yaml", "export:\n  fan:\n    type: fan.Helper\n");
    const h = await jmp(["shell", "--exporter-config", helper, "--", "true"], { env });
    expect(h.code).toBe(2);
    expect(h.stderr).toStartWith(`Error: ${helper}: export.fan.type: ${join(path, "fan.ts")} exports Helper, but it is not a Driver class`);
  });

  test("a broken file the config does not use is a warning; the exporter still runs", async () => {
    const path = driversFolder("broken-unused", { "pump.ts": "export const = 1;\n" });
    copyFileSync(join(FIXTURES, "relay.ts"), join(path, "relay.ts"));
    const cfg = dir.file("relay-only.yaml", "export:\n  relay:\n    type: relay.RelayBoard\n");
    const r = await jmp(["shell", "--exporter-config", cfg, "--", "j", "relay", "status"], { env: { ...isolated, JMP_DRIVERS_DIR: path } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("1: off\n2: off\n3: off\n4: off\n");
    expect(r.stderr).toContain(`WARN drivers: ${join(path, "pump.ts")}: not loaded: syntax error at line 1, column 14`);
  });
});

test("drivers/README.md shows the example driver files exactly as tested here", () => {
  const readme = readFileSync(join(ROOT, "drivers/README.md"), "utf8");
  for (const f of ["relay.ts", "lamp.js"]) expect(readme).toContain(readFileSync(join(FIXTURES, f), "utf8"));
});
