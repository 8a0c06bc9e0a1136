/**
 * A ClientConfig written by `jmp admin create client` works in upstream's client
 * as it is: test/interop/client_config.py reads it with upstream's field names,
 * types and driver allow rules (Debian's grpcio and PyYAML; no environment
 * overrides), then lists exporters through our controller with it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Lab } from "./distributed/lab.ts";
import { missingPython, runPythonJson } from "./interop/procs.ts";

const SCRIPT = join(import.meta.dir, "interop/client_config.py");
const POWER = "jumpstarter_driver_power.client.PowerClient";
const OUTSIDE = "acme_drivers.relay.RelayClient";

const missing = missingPython() ?? (Bun.spawnSync(["/usr/bin/python3", "-c", "import yaml"]).exitCode === 0 ? undefined : "PyYAML is missing (python3-yaml)");
if (missing) console.warn(`client config interop tests skipped: ${missing}`);

describe.skipIf(Boolean(missing))("a ClientConfig from jmp admin, read by upstream's rules", () => {
  let l: Lab;
  beforeAll(async () => {
    l = await Lab.start();
    await l.admin("create", "exporter", "pi-1", "-l", "board=rpi4");
  });
  afterAll(async () => l?.close());

  const written = async (name: string, ...flags: string[]) => {
    const file = join(l.dir.path, `${name}.yaml`);
    await l.admin("create", "client", name, "--out", file, ...flags);
    return runPythonJson<{ allowed: Record<string, boolean>; exporters: string[] }>(SCRIPT, [file, POWER, OUTSIDE]);
  };

  test("by default it loads upstream's own driver clients, not others, and reaches the controller", async () => {
    expect(await written("alice")).toEqual({ allowed: { [POWER]: true, [OUTSIDE]: false }, exporters: ["pi-1"] });
  }, 30_000);

  test("--allow, --allow '' and --unsafe are read as upstream reads them", async () => {
    expect((await written("bob", "--allow", "acme_drivers.*")).allowed).toEqual({ [POWER]: false, [OUTSIDE]: true });
    expect((await written("carol", "--allow", "")).allowed).toEqual({ [POWER]: false, [OUTSIDE]: false });
    expect((await written("dave", "--unsafe")).allowed).toEqual({ [POWER]: true, [OUTSIDE]: true });
  }, 30_000);
});
