/**
 * UsbHubPort against hubs simulated with umockdev (drivers/usb-common/testing):
 * libusb opens the simulated /dev/bus/usb node and every control transfer it
 * sends reaches the simulated hub, which logs it decoded; the tests check the
 * exact requests (bmRequestType, bRequest, wValue, wIndex) and what the port does.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { DriverError } from "@jumpstarter/driver";
import { PowerClient } from "../power/client.ts";
import { DriverHarness, logged } from "../../src/testing/driver-harness.ts";
import { failure } from "../testing/failure.ts";
import { simulationMissing, usbDevices, type DeviceSpec } from "../usb-common/testing/sim.ts";

const missing = simulationMissing();
if (missing) console.warn(`USB hub driver tests skipped: ${missing}`);

const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), usbDevices);
afterEach(() => harness.closeAll());

const HUB: DeviceSpec = {
  location: "1-1", kind: "hub", vendor: 0x0424, product: 0x2514, ports: 4,
  manufacturer: "Microchip", product_name: "USB2514B", serial: "HUB-A",
};
const BOARD: DeviceSpec = { location: "1-1.2", kind: "device", vendor: 0x0403, product: 0x6001, product_name: "FT232R USB UART" };
const BENCH = [HUB, BOARD];

const SET_POWER = (port: number) => ({ bmRequestType: "0x23", bRequest: 3, wValue: "0x0008", wIndex: port, wLength: 0 });
const CLEAR_POWER = (port: number) => ({ bmRequestType: "0x23", bRequest: 1, wValue: "0x0008", wIndex: port, wLength: 0 });
const PORT_STATUS = (port: number) => ({ bmRequestType: "0xa3", bRequest: 0, wValue: "0x0000", wIndex: port, wLength: 4 });
const HUB_DESCRIPTOR = { bmRequestType: "0xa0", bRequest: 6, wValue: "0x2900", wIndex: 0, wLength: 12 };

const sent = (records: { bmRequestType?: string; bRequest?: number; wValue?: string; wIndex?: number; wLength?: number }[]) =>
  records.map(({ bmRequestType, bRequest, wValue, wIndex, wLength }) => ({ bmRequestType, bRequest, wValue, wIndex, wLength }));

describe.skipIf(Boolean(missing))("UsbHubPort", () => {
  test("at start reads the hub descriptor and the port's status; off and on switch the port's power as uhubctl does", async () => {
    const { sim, client } = await harness.start<PowerClient>("UsbHubPort", { location: "1-1.2" }, BENCH);
    expect(client).toBeInstanceOf(PowerClient);
    expect(sent(sim.transfers("1-1"))).toEqual([HUB_DESCRIPTOR, PORT_STATUS(2)]);
    await logged(sim, "port 2 of hub 1-1 (0424:2514 Microchip USB2514B, serial HUB-A): powered, device connected (high speed), enabled");

    await client.off();
    expect(sent(sim.transfers("1-1").slice(2))).toEqual([CLEAR_POWER(2), PORT_STATUS(2)]);
    expect((await sim.state())["1-1"].ports).toMatchObject({ 1: { powered: true }, 2: { powered: false }, 3: { powered: true } });
    const off = [];
    for await (const r of client.read()) off.push(r);
    expect(off).toEqual([{
      voltage: 0, current: 0, powered: false, connected: false, enabled: false, suspended: false, overcurrent: false, hub: "1-1", port: 2,
    } as never]);

    await client.on();
    expect(sent(sim.transfers("1-1").slice(5))).toEqual([SET_POWER(2), PORT_STATUS(2)]);
    const on = [];
    for await (const r of client.read()) on.push(r);
    expect(on).toEqual([{
      voltage: 5, current: 0, powered: true, connected: true, enabled: true, suspended: false, overcurrent: false, speed: "high", hub: "1-1", port: 2,
    } as never]);
    // Nothing but the hub was addressed.
    expect(sim.transfers().every((t) => t.device === "1-1")).toBe(true);
  });

  test("the hub by location and port, by serial and port, and a root hub's port", async () => {
    const byHub = await harness.start<PowerClient>("UsbHubPort", { hub: "1-1", port: 3 }, BENCH);
    await byHub.client.off();
    expect(sent(byHub.sim.transfers("1-1")).at(-2)).toEqual(CLEAR_POWER(3));

    const bySerial = await harness.start<PowerClient>("UsbHubPort", { serial: "HUB-A", port: 4 }, BENCH);
    await bySerial.client.off();
    expect(sent(bySerial.sim.transfers("1-1")).at(-2)).toEqual(CLEAR_POWER(4));

    const root = await harness.start<PowerClient>("UsbHubPort", { location: "1-3" }, BENCH);
    await root.client.off();
    expect(sent(root.sim.transfers("1")).at(-2)).toEqual(CLEAR_POWER(3));
    expect(root.sim.transfers("1-1")).toEqual([]);
  });

  test("a SuperSpeed hub: its own descriptor type and power bit", async () => {
    const { sim, client } = await harness.start<PowerClient>("UsbHubPort", { location: "2-1.1" }, [
      { location: "2-1", kind: "hub", vendor: 0x0bda, product: 0x0411, ports: 4, usb3: true },
    ]);
    expect(sent(sim.transfers("2-1"))[0]).toEqual({ ...HUB_DESCRIPTOR, wValue: "0x2a00" });
    await client.off();
    const readings = [];
    for await (const r of client.read()) readings.push(r);
    expect(readings[0]).toMatchObject({ powered: false, voltage: 0 });
    await client.on();
    expect((await sim.state())["2-1"].ports[1]).toEqual({ powered: true, status: "0x200" });
  });

  test("a ganged hub is switched, with a warning that every port goes with it; a hub that cannot switch fails off", async () => {
    const ganged = await harness.start<PowerClient>("UsbHubPort", { location: "1-1.2" }, [{ ...HUB, power_switching: "ganged" }]);
    await logged(ganged.sim, "switches the power of all its ports together (ganged): switching port 2 of hub 1-1 switches ports 1 to 4");
    await ganged.client.off();
    expect(Object.values((await ganged.sim.state())["1-1"].ports).map((p) => (p as { powered: boolean }).powered)).toEqual([false, false, false, false]);

    const fixed = await harness.start<PowerClient>("UsbHubPort", { location: "1-1.2" }, [{ ...HUB, power_switching: "none" }]);
    const e = await failure(fixed.client.off());
    expect(e).toBeInstanceOf(DriverError);
    expect(e.message).toBe("off: hub 1-1 did not switch port 2 of hub 1-1 off: it reports the port still powered: the hub cannot switch port power");
  });

  test("read reports an over-current", async () => {
    const { client } = await harness.start<PowerClient>("UsbHubPort", { location: "1-1.2" }, [{ ...HUB, overcurrent: [2] }, BOARD]);
    const readings = [];
    for await (const r of client.read()) readings.push(r);
    expect(readings[0]).toMatchObject({ powered: true, overcurrent: true });
  });
});

describe.skipIf(Boolean(missing))("checks at start say what is wrong", () => {
  test("no hub at the location: the hubs there are are listed", async () => {
    const { message, sim } = await harness.startError("UsbHubPort", { location: "1-4.2" }, [...BENCH, { ...HUB, location: "2-1", serial: "HUB-B" }]);
    expect(message).toBe("no USB hub at 1-4 (found hubs: 1, 1-1, 2, 2-1)");
    expect(sim.transfers()).toEqual([]);
  });

  test("a location that is not a hub, a port the hub does not have, a serial nobody has", async () => {
    expect((await harness.startError("UsbHubPort", { hub: "1-1.2", port: 1 }, BENCH)).message).toBe(
      "1-1.2 is not a hub: it is 1-1.2 (0403:6001 FT232R USB UART) (found hubs: 1, 1-1)",
    );
    expect((await harness.startError("UsbHubPort", { location: "1-1.7" }, BENCH)).message).toBe(
      "hub 1-1 (0424:2514 Microchip USB2514B, serial HUB-A) has 4 ports: there is no port 7",
    );
    expect((await harness.startError("UsbHubPort", { serial: "HUB-Z", port: 1 }, BENCH)).message).toBe(
      "no USB hub with serial HUB-Z (found hubs: 1, 1-1 (serial HUB-A))",
    );
  });

  test("config that names no port, or names it twice, is refused before any device is touched", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, "give the port: location (1-1.2), or hub (1-1) or serial with port"],
      [{ location: "1-1.2", hub: "1-1" }, "give one of location, hub or serial, not location and hub"],
      [{ location: "1-1.2", port: 2 }, "port: location 1-1.2 names the port already; leave port out"],
      [{ hub: "1-1" }, "port: which port of the hub at 1-1? (1, 2, …)"],
      [{ location: "usb1" }, 'location: expected a port\'s USB location such as 1-1.2 (bus-port.port…), got "usb1"'],
    ];
    for (const [config, expected] of cases) {
      const { message, sim } = await harness.startError("UsbHubPort", config, BENCH);
      expect(message).toBe(expected);
      expect(sim.records().filter((r) => r.open)).toEqual([]);
    }
  });

  test.skipIf(process.getuid?.() !== 0)("a hub this user may not open: permission denied, with the udev rule to add", async () => {
    const { message } = await harness.startError("UsbHubPort", { location: "1-1.2" }, [{ ...HUB, mode: "0600" }, BOARD], { runAs: "65534:65534" });
    expect(message).toBe(
      "/dev/bus/usb/001/002: permission denied opening hub 1-1 (add a udev rule such as " +
        `'SUBSYSTEM=="usb", ATTR{idVendor}=="0424", ATTR{idProduct}=="2514", MODE="0660", GROUP="plugdev"' ` +
        "in /etc/udev/rules.d/50-jumpstarter.rules and the exporter's user to group plugdev, then replug the device)",
    );
  });
});
