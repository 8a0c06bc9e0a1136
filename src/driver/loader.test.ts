/** Drivers folders: where they are searched, which files count, and what a broken file reports. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_DRIVERS, registerBuiltinClients } from "../../drivers/catalog.ts";
import { ConfigError } from "../common/errors.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { serve } from "../testing/serve.ts";
import { DriverCatalog } from "./catalog.ts";
import { Driver, DriverClient } from "./index.ts";
import { candidateDirs, checkConfigTypes, driverFiles, driversSearchPath, loadDriverFiles, type DriversDir } from "./loader.ts";
import { AllowList, ClientRegistry, DEFAULT_ALLOW } from "./registry.ts";

const ROOT = join(import.meta.dir, "../..");
const FIXTURES = join(ROOT, "test/fixtures/drivers");
const tmp = mkdtempSync(join(tmpdir(), "jmp-loader-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fresh folder holding these files (fresh paths: imported modules are cached by path). */
function folder(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

const asDirs = (...paths: string[]): DriversDir[] => paths.map((path) => ({ path, origin: "--drivers-dir" }));

function targets() {
  return { catalog: new DriverCatalog(BUILTIN_DRIVERS), registry: registerBuiltinClients(new ClientRegistry()) };
}

const GOOD = `import { Driver, exported } from "@jumpstarter/driver";
export class Fan extends Driver {
  static override readonly client = "fan.FanClient";
  @exported async spin() { return "whirr"; }
}
`;

describe("search path", () => {
  test("--drivers-dir, JMP_DRIVERS_DIR, ./drivers, the user's and the system folder, in that order", () => {
    const env = { JMP_DRIVERS_DIR: "/lab/a::rel/b", XDG_CONFIG_HOME: "/home/u/.config", HOME: "/home/u" };
    expect(candidateDirs({ dirs: ["x", "/abs/y"], env, cwd: "/work" })).toEqual([
      { path: "/work/x", origin: "--drivers-dir" },
      { path: "/abs/y", origin: "--drivers-dir" },
      { path: "/lab/a", origin: "JMP_DRIVERS_DIR" },
      { path: "/work/rel/b", origin: "JMP_DRIVERS_DIR" },
      { path: "/work/drivers", origin: "./drivers" },
      { path: "/home/u/.config/jumpstarter/drivers", origin: "user" },
      { path: "/etc/jumpstarter/drivers", origin: "system" },
    ]);
  });

  test("missing folders are skipped, but a missing --drivers-dir is an error naming it", () => {
    const cwd = folder("search-cwd", { "drivers/fan.ts": GOOD });
    const env = { JMP_DRIVERS_DIR: join(tmp, "not-there"), XDG_CONFIG_HOME: join(tmp, "no-xdg") };
    expect(driversSearchPath({ env, cwd }).map((d) => d.path)).toEqual([join(cwd, "drivers")]);
    expect(() => driversSearchPath({ dirs: ["nope"], env, cwd })).toThrow(`--drivers-dir ${join(cwd, "nope")}: no such directory`);
    expect(() => driversSearchPath({ dirs: ["drivers/fan.ts"], env, cwd })).toThrow("is not a directory");
  });

  test("a folder reached twice counts once; jmp's own source tree is not a drivers folder", () => {
    const cwd = folder("search-dup", { "drivers/fan.ts": GOOD });
    symlinkSync(join(cwd, "drivers"), join(cwd, "again"));
    const env = { JMP_DRIVERS_DIR: `${join(cwd, "again")}:${join(ROOT, "drivers")}`, XDG_CONFIG_HOME: join(tmp, "no-xdg") };
    expect(driversSearchPath({ env, cwd })).toEqual([{ path: join(cwd, "again"), origin: "JMP_DRIVERS_DIR" }]);
    expect(driversSearchPath({ env: { XDG_CONFIG_HOME: join(tmp, "no-xdg") }, cwd: ROOT })).toEqual([]);
  });
});

test("driver files are the top-level .ts and .js files, without helpers, tests and declarations", () => {
  const dir = folder("files", {
    "b.ts": GOOD, "a.js": "", "_helper.ts": "", ".hidden.ts": "", "fan.test.ts": "", "types.d.ts": "",
    "notes.md": "", "sub/inner.ts": "",
  });
  mkdirSync(join(dir, "dir.ts"));
  expect(driverFiles(dir)).toEqual([join(dir, "a.js"), join(dir, "b.ts")]);
});

describe("loading", () => {
  test("drivers become <file>.<Class> types of the very Driver class jmp runs", async () => {
    const into = targets();
    const folders = await loadDriverFiles(asDirs(FIXTURES), into);
    expect(folders.broken).toEqual([]);
    const relay = into.catalog.resolve("relay.RelayBoard")!;
    expect(relay.source).toBe(join(FIXTURES, "relay.ts"));
    const board = new relay.driver({ channels: 2, initial: "on" });
    expect(board).toBeInstanceOf(Driver);
    expect(into.catalog.resolve("lamp.Lamp")!.source).toBe(join(FIXTURES, "lamp.js"));
    await using s = await serve(board);
    expect(await s.client.call("get", 2)).toBe(true);
  });

  test("client classes are registered as not built-in, so the allow-list decides", async () => {
    const into = targets();
    await loadDriverFiles(asDirs(FIXTURES), into);
    const cls = into.registry.lookup("relay.RelayClient", new AllowList(["relay.*"]));
    expect(cls && cls.prototype instanceof DriverClient).toBe(true);
    expect(into.registry.lookup("relay.RelayClient", DEFAULT_ALLOW)).toBeUndefined();
  });

  test("static labels add client class paths; a built-in client cannot be replaced", async () => {
    const dir = folder("labels", {
      "acme.ts": `import { DriverClient } from "@jumpstarter/driver";
export class AcmeClient extends DriverClient { static labels = ["acme_relay.client.RelayClient"]; }`,
      "hijack.ts": `import { DriverClient } from "@jumpstarter/driver";
export class Power extends DriverClient { static labels = ["jumpstarter_driver_power.client.PowerClient"]; }`,
    });
    const into = targets();
    const folders = await loadDriverFiles(asDirs(dir), into);
    expect(into.registry.lookup("acme_relay.client.RelayClient", new AllowList(["acme_*"]))?.name).toBe("AcmeClient");
    expect(folders.broken).toEqual([{
      file: join(dir, "hijack.ts"),
      stem: "hijack",
      message: "client hijack.Power: label jumpstarter_driver_power.client.PowerClient already has a client class (built-in clients cannot be replaced)",
    }]);
    expect(into.registry.lookup("jumpstarter_driver_power.client.PowerClient", new AllowList([], true))?.name).toBe("PowerClient");
  });

  test("a file with the name of an earlier folder's file is shadowed, not loaded", async () => {
    const first = folder("shadow-1", { "fan.ts": GOOD });
    const second = folder("shadow-2", { "fan.ts": "throw new Error('must not run')" });
    const folders = await loadDriverFiles(asDirs(first, second), targets());
    expect(folders.broken).toEqual([]);
    expect(folders.shadowed).toEqual([{ file: join(second, "fan.ts"), by: join(first, "fan.ts") }]);
  });

  test("broken files are reported with the file and what is wrong; the good ones still load", async () => {
    const dir = folder("broken", {
      "fan.ts": GOOD,
      "syntax.ts": "export class A {\n  x() {\n    return (;\n  }\n}\n",
      "throws.js": "const a = 1;\nthrow new Error('the relay board is not plugged in');\n",
      "missing.ts": `import { Drivr } from "@jumpstarter/driver";\nexport const x = Drivr;\n`,
      "npm.ts": `import pad from "left-pad";\nexport default pad;\n`,
      "noclient.ts": `import { Driver } from "@jumpstarter/driver";\nexport class Bare extends Driver {}\n`,
      "jumpstarter_driver_power.driver.ts": `import { Driver } from "@jumpstarter/driver";
export class MockPower extends Driver { static override readonly client = "x.Y"; }\n`,
    });
    const into = targets();
    const folders = await loadDriverFiles(asDirs(dir), into);
    expect(folders.files.map((f) => f.stem)).toEqual(["fan"]);
    const messages = Object.fromEntries(folders.broken.map((b) => [b.stem, b.message]));
    expect(messages.syntax).toBe("syntax error at line 3, column 13: Unexpected ;");
    expect(messages.throws).toBe("Error: the relay board is not plugged in (at line 2)");
    expect(messages.missing).toContain("'Drivr' not found in module '@jumpstarter/driver'");
    expect(messages.npm).toContain("Cannot find package 'left-pad'");
    expect(messages.npm).toContain("there is no node_modules");
    expect(messages.noclient).toContain(`driver Bare does not declare its client class: add static client = "noclient.BareClient"`);
    expect(messages["jumpstarter_driver_power.driver"]).toBe("type jumpstarter_driver_power.driver.MockPower is already a built-in driver's; rename the file or the class");
    expect(into.catalog.resolve("jumpstarter_driver_power.driver.MockPower")!.source).toBe("built-in");
  });
});

describe("config types naming driver files", () => {
  const dir = folder("config", {
    "fan.ts": `import { Driver, DriverClient } from "@jumpstarter/driver";
export class Fan extends Driver { static override readonly client = "fan.FanClient"; }
export class FanClient extends DriverClient {}
export const SPEEDS = [1, 2];
export class Helper {}
`,
    "broken.ts": "export const = 1;\n",
  });
  const check = async (type: string) => {
    const into = targets();
    const folders = await loadDriverFiles(asDirs(dir), into);
    const config = parseExporterConfig({ export: { rack: { children: { cooling: { type } } } } }, "lab.yaml");
    try {
      checkConfigTypes(config, folders, into.catalog);
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).keyPath).toBe("export.rack.children.cooling.type");
      return (e as ConfigError).message;
    }
  };

  test("a loaded driver and the built-ins pass; unrelated unknown types are left to the tree builder", async () => {
    expect(await check("fan.Fan")).toBeUndefined();
    expect(await check("MockPower")).toBeUndefined();
    expect(await check("jumpstarter_driver_foo.driver.Foo")).toBeUndefined();
  });

  test("each mistake names the config file, the key path and the driver file", async () => {
    expect(await check("broken.Thing")).toBe(
      `lab.yaml: export.rack.children.cooling.type: driver file ${join(dir, "broken.ts")} failed to load: syntax error at line 1, column 14: Expected identifier but found "=" (and 2 more)`,
    );
    expect(await check("fan.Helper")).toContain(`${join(dir, "fan.ts")} exports Helper, but it is not a Driver class`);
    expect(await check("fan.SPEEDS")).toContain("exports SPEEDS, but it is not a Driver class");
    expect(await check("fan.FanClient")).toContain("exports FanClient, a client class; a type names a Driver class (it offers Fan)");
    expect(await check("fan.Fna")).toContain(`${join(dir, "fan.ts")} has no export Fna (did you mean fan.Fan?); it offers Fan`);
    expect(await check("fam.Fan")).toBe(
      `lab.yaml: export.rack.children.cooling.type: unknown driver type 'fam.Fan': no driver file fam.ts or fam.js in the drivers folders (${dir}); did you mean fan.Fan?`,
    );
  });
});
