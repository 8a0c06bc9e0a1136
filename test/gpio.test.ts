/**
 * GPIO end to end: dist/jmp as a user runs it (`jmp shell --exporter-config lab.yaml
 * -- j power on`), on a Raspberry Pi's chip simulated with umockdev
 * (drivers/gpiod/testing/umockdev-gpiochip.py): the exporter's ioctls are checked
 * as the simulated chip logs them, and buttons are pressed from outside.
 */
import { describe, expect, test } from "bun:test";
import { eventually } from "../src/api/eventually.ts";
import { gpioChips, simulationMissing, type ChipSpec } from "../drivers/gpiod/testing/sim.ts";
import { simulatedShells } from "./simulated-shells.ts";

const missing = simulationMissing();
if (missing) console.warn(`GPIO end-to-end tests skipped: ${missing}`);

const PI: ChipSpec = {
  name: "gpiochip0",
  label: "pinctrl-bcm2711",
  lines: 58,
  names: Object.fromEntries(Array.from({ length: 28 }, (_, i) => [i, `GPIO${i}`])),
};

const LAB = `
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: lab
  name: pi-bench
export:
  power:
    type: jumpstarter_driver_gpiod.driver.PowerSwitch
    config:
      line: GPIO17
      active_low: true
  led:
    type: DigitalOutput
    config:
      line: 27
  button:
    type: jumpstarter_driver_gpiod.driver.DigitalInput
    config:
      line: GPIO22
      bias: pull_up
      active_low: true
`;

const shells = simulatedShells("jmp-gpio-", gpioChips, missing);
const shell = (script: string, chips: ChipSpec[] = [PI]) => shells.run(script, chips, LAB);

describe.skipIf(Boolean(missing))("GPIO on a simulated Raspberry Pi chip through dist/jmp", () => {
  test("j power on/off switch the relay (active low), j led on, j button read; every line is released when the shell ends", async () => {
    const sim = shell("j power on && j led on && j button read && j power off && echo done");
    expect(await sim.proc.exited).toBe(0);
    expect(sim.output).toEqual(["inactive", "done"]);

    const requests = sim.ioctls("GPIO_V2_GET_LINE_IOCTL");
    expect(requests.map((r) => [r.offsets, r.result, r.config !== "invalid" && r.config?.flags])).toEqual([
      [[17], 0, ["ACTIVE_LOW", "OUTPUT"]],
      [[27], 0, ["OUTPUT"]],
      [[22], 0, ["ACTIVE_LOW", "INPUT", "EDGE_RISING", "EDGE_FALLING", "BIAS_PULL_UP"]],
    ]);
    expect(new Set(requests.map((r) => r.consumer)).size).toBe(1);
    expect(requests[0]!.consumer).toMatch(/^jmp\[\d+\]$/);
    // Each switch as the pin sees it: the relay's coil is on when GPIO17 is low.
    expect(sim.ioctls("GPIO_V2_LINE_SET_VALUES_IOCTL").map((r) => r.physical)).toEqual([{ 17: 0 }, { 27: 1 }, { 17: 1 }]);
    expect(sim.records().filter((r) => r.released).map((r) => r.released).sort()).toEqual([[17], [22], [27]]);
  });

  test("j button wait-for-active returns when the button is pressed; a wait that times out fails with the line named", async () => {
    const sim = shell("j button wait-for-active -t 30 && echo pressed && j button wait-for-edge falling -t 0.2; echo rc=$?");
    // The wait has begun once the driver has read the line (it watches for edges from before that read).
    await eventually(() => expect(sim.ioctls("GPIO_V2_LINE_GET_VALUES_IOCTL").length).toBeGreaterThan(0), { what: "the driver to read the button", interval: 20, timeout: 15_000 });
    expect(sim.output).toEqual([]);
    expect(await sim.pull("gpiochip0", 22, 0)).toMatchObject({ events: ["RISING_EDGE"], logical: 1 });
    expect(await sim.proc.exited).toBe(0);
    // stdout and stderr arrive on two pipes: their lines' order between them is not kept.
    expect([...sim.output].sort()).toEqual([
      "Error: wait_for_edge: no falling edge on line 22 (GPIO22) of /dev/gpiochip0 within 0.2 s",
      "pressed",
      "rc=1",
    ]);
  });

  test("a config naming a line someone holds does not start: exit 2 with the file, the key and the holder", async () => {
    const sim = shell("j power on", [{ ...PI, used: { 17: "sysfs" } }]);
    expect(await sim.proc.exited).toBe(2);
    expect(sim.output).toEqual([
      `Error: ${shells.dir.path}/lab.yaml: export.power.config: line 17 (GPIO17) of /dev/gpiochip0 is in use by "sysfs": free it there first (gpioinfo shows who holds each line)`,
    ]);
    expect(sim.ioctls("GPIO_V2_GET_LINE_IOCTL")).toEqual([]);
  });
});
