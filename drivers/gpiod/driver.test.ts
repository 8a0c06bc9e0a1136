/**
 * The GPIO drivers against simulated chips (testing/umockdev-gpiochip.py): each
 * test serves one driver in a child process under the simulation and drives it
 * with its client over the session socket, as `j` would. The simulation logs
 * every ioctl the driver makes, decoded, so the tests check the exact requests
 * (line, consumer, flags, values) and what the line then does.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  DeadlineExceededError, InvalidArgumentError, NotImplementedDriverError, type DriverClient,
} from "@jumpstarter/driver";
import { PowerClient } from "../power/client.ts";
import { DriverHarness } from "../../src/testing/driver-harness.ts";
import { failure } from "../testing/failure.ts";
import { eventually } from "../../src/common/eventually.ts";
import { DigitalInputClient, DigitalOutputClient } from "./client.ts";
import { gpioChips, simulationMissing, type ChipSpec, type GpioSim } from "./testing/sim.ts";

const missing = simulationMissing();
if (missing) console.warn(`GPIO driver tests skipped: ${missing}`);

const CHIP: ChipSpec = {
  name: "gpiochip0",
  label: "gpio-sim.0-node0",
  lines: 8,
  names: { 1: "RELAY1", 2: "RELAY2", 4: "BUTTON", 6: "BOOT_MODE" },
};

const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), gpioChips);
afterEach(() => harness.closeAll());

const start = (type: string, config: Record<string, unknown>, chips: ChipSpec[] = [CHIP]) => harness.start(type, config, chips);

/** The message a driver fails to start with (its constructor's error). */
async function startError(type: string, config: Record<string, unknown>, chips: ChipSpec[] = [CHIP], runAs?: string): Promise<string> {
  return (await harness.startError(type, config, chips, { runAs })).message;
}

/** Resolves once the driver has made more than `n` GET_VALUES ioctls: how a wait shows it has begun. */
function getValuesBeyond(sim: GpioSim, n: number) {
  return eventually(() => expect(sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").length).toBeGreaterThan(n), { what: "the driver to read the line", interval: 20 });
}

describe.skipIf(Boolean(missing))("DigitalOutput", () => {
  test("requests the line as an output with its settings and initial value, then on/off set it", async () => {
    const { sim, pid, session } = await start("DigitalOutput", {
      line: 1, active_low: true, bias: "pull_down", initial_value: "active",
    });
    expect(sim.ioctls().map((r) => r.ioctl)).toEqual([
      "GPIO_GET_CHIPINFO_IOCTL", "GPIO_V2_GET_LINEINFO_IOCTL", "GPIO_V2_GET_LINE_IOCTL",
    ]);
    expect(sim.ioctls("GPIO_V2_GET_LINE_IOCTL")).toEqual([{
      chip: "gpiochip0",
      ioctl: "GPIO_V2_GET_LINE_IOCTL",
      offsets: [1],
      consumer: `jmp[${pid}]`,
      num_lines: 1,
      event_buffer_size: 0,
      config: { flags: ["ACTIVE_LOW", "OUTPUT", "BIAS_PULL_DOWN"], attrs: [{ id: "OUTPUT_VALUES", value: "0x1", mask: "0x1" }] },
      result: 0,
    }]);
    // Active from the first instant; active low: the pin is low.
    expect(await sim.line("gpiochip0", 1)).toEqual({
      requested: true, consumer: `jmp[${pid}]`, flags: ["USED", "ACTIVE_LOW", "OUTPUT", "BIAS_PULL_DOWN"], physical: 0, logical: 1,
    });

    const gpio = session.root as DigitalOutputClient;
    expect(gpio).toBeInstanceOf(DigitalOutputClient);
    const before = sim.ioctls().length;
    await gpio.off();
    expect(sim.ioctls().slice(before)).toEqual([
      { chip: "gpiochip0", ioctl: "GPIO_V2_LINE_SET_VALUES_IOCTL", mask: "0x1", bits: "0x0", physical: { 1: 1 }, result: 0 },
      // read back for the log line
      { chip: "gpiochip0", ioctl: "GPIO_V2_LINE_GET_VALUES_IOCTL", mask: "0x1", bits: "0x0", result: 0 },
    ]);
    expect((await sim.line("gpiochip0", 1)).physical).toBe(1);
    expect(await gpio.read()).toBe("inactive");
    await gpio.on();
    expect(sim.ioctls("GPIO_V2_LINE_SET_VALUES_IOCTL").at(-1)).toMatchObject({ bits: "0x1", physical: { 1: 0 } });
    expect(await gpio.read()).toBe("active");
    await gpio.write(false);
    expect((await sim.line("gpiochip0", 1)).logical).toBe(0);
  });

  test("a line given by name is looked up in the chip's line info; drive and the inactive default reach the request", async () => {
    const { sim } = await start("DigitalOutput", { device: 0, line: "BUTTON", drive: "open_source" });
    expect(sim.ioctls("GPIO_V2_GET_LINEINFO_IOCTL").map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(sim.ioctls("GPIO_V2_GET_LINE_IOCTL")[0]).toMatchObject({
      offsets: [4],
      config: { flags: ["OUTPUT", "OPEN_SOURCE"], attrs: [{ id: "OUTPUT_VALUES", value: "0x0", mask: "0x1" }] },
    });
  });

  test("the line is released when the session ends", async () => {
    const { sim, pid } = await start("DigitalOutput", { line: "RELAY2" });
    expect((await sim.line("gpiochip0", 2)).consumer).toBe(`jmp[${pid}]`);
    sim.proc.stdin.write("close\n");
    await sim.waitForOutput((l) => (l.includes('"closed"') ? true : undefined), "the session to close");
    // The process is still running: the driver gave the line back, not the process's end.
    expect(sim.proc.exitCode).toBeNull();
    await eventually(async () => expect(await sim.line("gpiochip0", 2)).toMatchObject({ requested: false, consumer: "" }), { what: "line 2 to be free" });
    expect(sim.records().filter((r) => r.released)).toEqual([{ chip: "gpiochip0", closed: true, released: [2] }]);
  });
});

describe.skipIf(Boolean(missing))("checks at start say what is wrong", () => {
  test("a line name that does not exist: the similar names are listed", async () => {
    expect(await startError("DigitalOutput", { line: "RELAY" })).toBe(
      '/dev/gpiochip0 (gpio-sim.0-node0) has no line named "RELAY"; similar names: "RELAY1" (line 1), "RELAY2" (line 2)',
    );
    expect(await startError("DigitalOutput", { line: "LED" })).toBe(
      '/dev/gpiochip0 (gpio-sim.0-node0) has no line named "LED"; its lines are: "RELAY1" (line 1), "RELAY2" (line 2), "BUTTON" (line 4), "BOOT_MODE" (line 6)',
    );
  });

  test("a line number past the chip's lines", async () => {
    expect(await startError("DigitalInput", { line: 8 })).toBe("/dev/gpiochip0 (gpio-sim.0-node0) has lines 0 to 7; there is no line 8");
  });

  test("a line someone else holds names the holder, and no request is made", async () => {
    const chips = [{ ...CHIP, used: { 2: "fan-control", 6: "jmp[4242]" } }];
    expect(await startError("PowerSwitch", { line: 2 }, chips)).toBe(
      'line 2 (RELAY2) of /dev/gpiochip0 is in use by "fan-control": free it there first (gpioinfo shows who holds each line)',
    );
    expect(await startError("DigitalOutput", { line: "BOOT_MODE" }, chips)).toBe(
      'line 6 (BOOT_MODE) of /dev/gpiochip0 is in use by "jmp[4242]": another jmp exporter (process 4242) holds it; stop that one first',
    );
    expect(harness.sims.flatMap((sim) => sim.ioctls("GPIO_V2_GET_LINE_IOCTL"))).toEqual([]);
  });

  test("a chip that does not exist, and a device that is not a GPIO chip", async () => {
    expect(await startError("DigitalOutput", { device: "/dev/gpiochip7", line: 0 })).toStartWith("/dev/gpiochip7 does not exist (");
    expect(await startError("DigitalOutput", { device: "/dev/null", line: 0 })).toBe(
      "/dev/null is not a GPIO chip (it does not answer GPIO_GET_CHIPINFO_IOCTL: ENOTTY); use a /dev/gpiochipN",
    );
  });

  test.skipIf(process.getuid?.() !== 0)("a chip this user may not open: permission denied, and the group to join", async () => {
    // As nobody, the simulated node (in root's private umockdev directory) cannot be opened: EACCES, as a real
    // /dev/gpiochip0 owned by root:gpio 0660 answers a user outside that group.
    expect(await startError("DigitalOutput", { line: 1 }, [CHIP], "65534:65534")).toBe("/dev/gpiochip0: permission denied (add the user to group gpio)");
  });

  test("settings that cannot go together are refused before the chip is touched", async () => {
    expect(await startError("DigitalInput", { line: 4, drive: "open_drain" })).toBe("drive: open_drain applies to outputs; an input has no drive (leave it out)");
    expect(await startError("PowerSwitch", { line: 1, mode: "open_drain", drive: "push_pull" })).toBe("mode (open_drain) and drive (push_pull) disagree; give one of them");
    expect(harness.sims.flatMap((sim) => sim.ioctls())).toEqual([]);
  });
});

describe.skipIf(Boolean(missing))("DigitalInput", () => {
  const pulledUp = (level: 0 | 1): ChipSpec[] => [{ ...CHIP, pulls: { 4: level } }];

  test("requests an input with both edges detected; read follows the pin through active_low", async () => {
    const { sim, session } = await start("DigitalInput", { line: "BUTTON", active_low: true, bias: "pull_up" }, pulledUp(1));
    expect(sim.ioctls("GPIO_V2_GET_LINE_IOCTL")[0]).toMatchObject({
      offsets: [4],
      config: { flags: ["ACTIVE_LOW", "INPUT", "EDGE_RISING", "EDGE_FALLING", "BIAS_PULL_UP"], attrs: [] },
    });
    const button = session.root as DigitalInputClient;
    expect(button).toBeInstanceOf(DigitalInputClient);
    expect(await button.read()).toBe("inactive");
    await sim.pull("gpiochip0", 4, 0);
    expect(await button.read()).toBe("active");
    expect(sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").map((r) => r.bits)).toEqual(["0x0", "0x1"]);
  });

  test("wait_for_active returns when the line becomes active, on its rising edge", async () => {
    const { sim, session } = await start("DigitalInput", { line: 4 }, pulledUp(0));
    const button = session.root as DigitalInputClient;
    const reads = sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").length;
    let returned = false;
    const waiting = button.waitForActive(10).then(() => (returned = true));
    await getValuesBeyond(sim, reads);
    expect(returned).toBe(false);
    expect((await sim.pull("gpiochip0", 4, 1)).events).toEqual(["RISING_EDGE"]);
    await waiting;
    // Already active: no wait at all.
    await button.waitForActive(0);
    await sim.pull("gpiochip0", 4, 0);
    await button.waitForInactive(0);
  });

  test("wait_for_edge counts only edges after the call: earlier ones are dropped", async () => {
    const { sim, session } = await start("DigitalInput", { line: 4 }, pulledUp(0));
    const button = session.root as DigitalInputClient;
    await sim.pull("gpiochip0", 4, 1);
    expect((await sim.pull("gpiochip0", 4, 0)).events).toEqual(["FALLING_EDGE"]);
    const stale = await failure(button.waitForEdge("falling", 0.3));
    expect(stale).toBeInstanceOf(DeadlineExceededError);
    expect(stale.message).toBe("wait_for_edge: no falling edge on line 4 (BUTTON) of /dev/gpiochip0 within 0.3 s");

    const reads = sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").length;
    const waiting = button.waitForEdge("falling", 10);
    await getValuesBeyond(sim, reads);
    await sim.pull("gpiochip0", 4, 1); // a rising edge is not what it waits for
    await sim.pull("gpiochip0", 4, 0);
    await waiting;
  });

  test("two waits on one line both see its edge", async () => {
    const { sim, session } = await start("DigitalInput", { line: 4 }, pulledUp(0));
    const button = session.root as DigitalInputClient;
    const reads = sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").length;
    const both = Promise.all([button.waitForEdge("rising", 10), button.waitForActive(10)]);
    await getValuesBeyond(sim, reads + 1);
    await sim.pull("gpiochip0", 4, 1);
    await both;
  });

  test("bad arguments are INVALID_ARGUMENT, as upstream's ValueError", async () => {
    const { session } = await start("DigitalInput", { line: 4 });
    const raw = session.root as DriverClient;
    const sideways = await failure(raw.call("wait_for_edge", "sideways", 1));
    expect(sideways).toBeInstanceOf(InvalidArgumentError);
    expect(sideways.message).toContain('edge_type must be "rising" or "falling", got "sideways"');
    const negative = await failure(raw.call("wait_for_active", -1));
    expect(negative).toBeInstanceOf(InvalidArgumentError);
    expect(negative.message).toContain("timeout must be a number of seconds (0 or more) or null, got -1");
  });
});

describe.skipIf(Boolean(missing))("PowerSwitch", () => {
  test("the power client switches the relay; read has no measurements (UNIMPLEMENTED, as upstream)", async () => {
    const { sim, session } = await start("PowerSwitch", { line: "RELAY1", mode: "open_drain", bias: "pull_up", initial_value: "off" });
    expect(sim.ioctls("GPIO_V2_GET_LINE_IOCTL")[0]).toMatchObject({
      offsets: [1],
      config: { flags: ["OUTPUT", "OPEN_DRAIN", "BIAS_PULL_UP"], attrs: [{ id: "OUTPUT_VALUES", value: "0x0", mask: "0x1" }] },
    });
    const power = session.root as PowerClient;
    expect(power).toBeInstanceOf(PowerClient);
    expect(session.report.reports[0]!.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_power.client.PowerClient");
    await power.on();
    // Open drain lets go of the line; the pull-up takes it high.
    expect(await sim.line("gpiochip0", 1)).toMatchObject({ logical: 1, physical: 1 });
    await power.off();
    expect(await sim.line("gpiochip0", 1)).toMatchObject({ logical: 0, physical: 0 });
    expect(sim.ioctls("GPIO_V2_LINE_SET_VALUES_IOCTL").map((r) => r.bits)).toEqual(["0x1", "0x0"]);
    const read = await failure((async () => {
      for await (const _ of power.read()) {
        // no readings expected
      }
    })());
    expect(read).toBeInstanceOf(NotImplementedDriverError);
    expect(read.message).toContain("line 1 (RELAY1) of /dev/gpiochip0 switches power; it cannot measure voltage or current");
    expect(await (session.root as DriverClient).call("read_pin")).toBe(0);
  });
});
