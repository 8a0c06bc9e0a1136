import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { COMPOSITE_CLIENT, type DriverClient, InvalidArgumentError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { PowerClient } from "../power/client.ts";
import { POWER_CLIENT } from "../power/driver.ts";
import type { DutSimBoard } from "./board.ts";
import { DutSim, type DutSimConsole, SERIAL_CLIENT } from "./driver.ts";
import { Transcript } from "./transcript.ts";

const CLIENT_LABEL = "jumpstarter.dev/client";

let served: Served | undefined;
const transcripts: Transcript[] = [];
afterEach(async () => {
  for (const t of transcripts.splice(0)) await t.close();
  await served?.close();
  served = undefined;
});

/** Opens the console as a client would: a transcript of its output and a way to type. */
async function openConsole(client: DriverClient) {
  const stream = await client.stream("connect");
  const out = Transcript.of(stream.readable);
  transcripts.push(out);
  const keys = stream.writable.getWriter();
  return { out, type: (text: string) => keys.write(new TextEncoder().encode(text)) };
}

/** Resolves once the board has been handed `n` more typed bytes (whatever it makes of them). */
function keysReach(board: DutSimBoard, n: number): Promise<void> {
  const input = board.input.bind(board);
  const reached = Promise.withResolvers<void>();
  let got = 0;
  board.input = (bytes) => {
    input(bytes);
    got += bytes.byteLength;
    if (got >= n) reached.resolve();
  };
  return reached.promise;
}

test("over the wire: boot, login, uname, reboot, power off silences, power on boots again", async () => {
  const driver = DutSim.create({ boot_time_ms: 100 });
  served = await serve(driver);
  const power = served.client.child("power", PowerClient);
  const { out, type } = await openConsole(served.client.child("console"));

  await power.on();
  expect(await out.expect("dutsim login: ")).toContain("Welcome to DutSim");
  await type("root\r");
  await out.expect("root@dutsim:~# ");
  await type("uname -a\r");
  expect(await out.expect("# ")).toMatch(/^uname -a\r\nLinux dutsim 6\.6\.0-dutsim #1 .* aarch64 GNU\/Linux\r\nroot@dutsim:~# $/);
  await type("reboot\r");
  await out.expect("reboot: Restarting system\r\n");
  expect(await out.expect("login: ")).toContain("U-Boot");

  await power.off();
  const typed = keysReach(driver.board, 5);
  await type("root\r");
  await typed;
  // Typed at a dead board: an echo or a prompt would come before the next boot's first line.
  await power.on();
  expect(await out.expect("dutsim login: ")).toMatch(/^\r\nU-Boot [^]*Welcome to DutSim/);
});

test("power readings follow the power state", async () => {
  served = await serve(DutSim.create({ boot_time_ms: 0 }));
  const power = served.client.child("power", PowerClient);
  const read = async () => {
    const all = [];
    for await (const r of power.read()) all.push(r);
    return all;
  };
  expect(await read()).toEqual([{ voltage: 0, current: 0 }]);
  await power.on();
  expect(await read()).toEqual([{ voltage: 5.1, current: 0.4 }]);
  await power.off();
  expect(await read()).toEqual([{ voltage: 0, current: 0 }]);
});

test("output produced while nobody is connected waits for the next connection", async () => {
  const driver = DutSim.create({ boot_time_ms: 0 });
  served = await serve(driver);
  const consoleDriver = driver.children.console as DutSimConsole;
  const power = served.client.child("power", PowerClient);
  const consoleClient = served.client.child("console");
  const bootLog = /^\r\nU-Boot [^]*Starting kernel[^]*Welcome to DutSim\r\n\r\ndutsim login: $/;

  await power.on();
  await eventually(() => expect(driver.board.state).toBe("login"), { what: "the board to reach the login prompt", interval: 5 });
  const first = await openConsole(consoleClient);
  expect(await first.out.expect("login: ")).toMatch(bootLog);
  await first.out.close();
  await eventually(() => expect(consoleDriver.connections).toBe(0), { what: "the exporter to see the client leave", interval: 5 });

  await power.off();
  await power.on();
  await eventually(() => expect(driver.board.state).toBe("login"), { what: "the board to boot again", interval: 5 });
  const second = await openConsole(consoleClient);
  expect(await second.out.expect("login: ")).toMatch(bootLog);
});

test("several clients share the console: all see the output, any can type", async () => {
  served = await serve(DutSim.create({ boot_time_ms: 0 }));
  const a = await openConsole(served.client.child("console"));
  const b = await openConsole(served.client.child("console"));
  await served.client.child("power", PowerClient).on();
  await a.out.expect("login: ");
  await b.out.expect("login: ");
  await a.type("root\r");
  await a.out.expect("# ");
  await b.out.expect("# ");
  await b.type("hostname\r");
  expect(await a.out.expect("# ")).toContain("hostname\r\ndutsim\r\n");
});

test("the console looks like a serial port: client labels, set_dtr and set_rts", async () => {
  served = await serve(DutSim.create({}));
  const consoleClient = served.client.child("console");
  expect(served.client.labels[CLIENT_LABEL]).toBe(COMPOSITE_CLIENT);
  expect(served.client.child("power").labels[CLIENT_LABEL]).toBe(POWER_CLIENT);
  expect(consoleClient.labels[CLIENT_LABEL]).toBe(SERIAL_CLIENT);
  expect(await consoleClient.call("set_dtr", true)).toBeNull();
  expect(await consoleClient.call("set_rts", false)).toBeNull();
  // Not `expect(promise).rejects`: in Bun 1.4.5 it stalls a promise that waits on gRPC.
  const refused = await consoleClient.call("set_dtr", "high").catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(InvalidArgumentError);
  expect((refused as Error).message).toBe(`set_dtr: expected true or false, got "high"`);
});

test("ending the session powers the board off", async () => {
  const driver = DutSim.create({ boot_time_ms: 0 });
  served = await serve(driver);
  await served.client.child("power", PowerClient).on();
  await served.close();
  expect(driver.board.powered).toBe(false);
});

test("the README's exporter config works: refs, hostname and password", async () => {
  const readme = readFileSync(join(import.meta.dir, "README.md"), "utf8");
  const yaml = /```yaml\n([^]*?)```/.exec(readme)![1]!;
  served = await serve(parseExporterConfig(YAML.parse(yaml), "README.md"));
  expect(Object.keys(served.client.children).sort()).toEqual(["console", "dut", "power"]);
  const { out, type } = await openConsole(served.client.child("console"));
  await served.client.child("power", PowerClient).on();
  await out.expect("rpi4 login: ");
  await type("root\r");
  await out.expect("Password: ");
  await type("secret\r");
  await out.expect("root@rpi4:~# ");
  await type("uname -m\r");
  expect(await out.expect("# ")).toBe("uname -m\r\naarch64\r\nroot@rpi4:~# ");
  expect(served.client.child("dut").child("console").uuid).toBe(served.client.child("console").uuid);
});

test("both type names load; config mistakes name the key", async () => {
  const file = "lab.yaml";
  const tree = (config: Record<string, unknown>, type = "DutSim") => parseExporterConfig({ export: { board: { type, config } } }, file);
  served = await serve(tree({ hostname: "bench-3" }, "jmp.drivers.dutsim.DutSim"));
  expect(Object.keys(served.client.children.board!.children).sort()).toEqual(["console", "power"]);
  await expect(serve(tree({ hostname: "my board" }))).rejects.toThrow(
    "lab.yaml: export.board.config: hostname: expected letters, digits, '-' and '.' (as a real hostname), got 'my board'",
  );
  await expect(serve(tree({ boot_time_ms: -5 }))).rejects.toThrow("export.board.config.boot_time_ms: expected an integer from 0 to 600000, got");
  await expect(serve(tree({ bootTime: 5 }))).rejects.toThrow("export.board.config.bootTime");
});
