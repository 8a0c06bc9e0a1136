/**
 * Ykush against YKUSH boards simulated with umockdev (drivers/usb-common/testing):
 * the simulated board's hidraw node logs every report the driver writes, so the
 * tests check the exact bytes (report ID 0, then the 64-byte report upstream sends).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { NotImplementedDriverError } from "@jumpstarter/driver";
import { PowerClient } from "../power/client.ts";
import { eventually } from "../../src/common/eventually.ts";
import { DriverHarness, logged } from "../../src/testing/driver-harness.ts";
import { failure } from "../testing/failure.ts";
import { simulationMissing, usbDevices, type DeviceSpec } from "../usb-common/testing/sim.ts";

const missing = simulationMissing();
if (missing) console.warn(`YKUSH driver tests skipped: ${missing}`);

const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), usbDevices);
afterEach(() => harness.closeAll());

const BOARD: DeviceSpec = { location: "1-2", kind: "ykush", vendor: 0x04d8, product: 0xf2f7, serial: "YK25838", product_name: "YKUSH" };
const OTHER: DeviceSpec = { ...BOARD, location: "1-3", serial: "YK11111" };

/** What hidraw receives: the report ID (0), then the 64-byte report with the command first. */
const report = (cmd: number) => `00${cmd.toString(16).padStart(2, "0")}${"00".repeat(63)}`;

describe.skipIf(Boolean(missing))("Ykush", () => {
  test("switches its port off when the session starts (upstream's default), then on and off with upstream's reports", async () => {
    const { sim, client, logs } = await harness.start<PowerClient>("Ykush", { serial: "YK25838", port: "1" }, [BOARD]);
    expect(client).toBeInstanceOf(PowerClient);
    expect(sim.reportsWritten("1-2")).toEqual([report(0x01)]);
    expect((await sim.state())["1-2"].ports).toEqual({ 1: false, 2: true, 3: true });
    await client.on();
    await client.off();
    await client.on();
    expect(sim.reportsWritten("1-2")).toEqual([report(0x01), report(0x11), report(0x01), report(0x11)]);
    expect((await sim.state())["1-2"].ports).toEqual({ 1: true, 2: true, 3: true });
    await eventually(() => expect(logs).toEqual(["YKUSH YK25838 port 1 on", "YKUSH YK25838 port 1 off", "YKUSH YK25838 port 1 on"]));
  });

  test("every port at once by default, ports as numbers, default on and keep", async () => {
    const all = await harness.start<PowerClient>("Ykush", { serial: "YK25838" }, [BOARD]);
    expect(all.sim.reportsWritten()).toEqual([report(0x0a)]);
    await all.client.on();
    expect(all.sim.reportsWritten().at(-1)).toBe(report(0x1a));

    const three = await harness.start<PowerClient>("Ykush", { serial: "YK25838", port: 3, default: "on" }, [BOARD]);
    expect(three.sim.reportsWritten()).toEqual([report(0x13)]);
    await three.client.off();
    expect(three.sim.reportsWritten().at(-1)).toBe(report(0x03));

    const kept = await harness.start<PowerClient>("Ykush", { serial: "YK25838", port: "a", default: "keep" }, [BOARD]);
    expect(kept.sim.reportsWritten()).toEqual([]);
  });

  test("without a serial the first board is used, with a warning naming the others (as upstream)", async () => {
    const { sim, client } = await harness.start<PowerClient>("Ykush", { port: 2, default: "keep" }, [BOARD, OTHER]);
    await logged(sim, "no serial given for the YKUSH: using the first one found, YK25838 at 1-2 (also found: 1-3 (serial YK11111))");
    await client.on();
    expect(sim.reportsWritten("1-2")).toEqual([report(0x12)]);
    expect(sim.reportsWritten("1-3")).toEqual([]);
  });

  test("read is UNIMPLEMENTED, as upstream: a YKUSH measures nothing", async () => {
    const { client } = await harness.start<PowerClient>("Ykush", { serial: "YK25838", default: "keep" }, [BOARD]);
    const e = await failure((async () => {
      for await (const _ of client.read()) {
        // nothing comes
      }
    })());
    expect(e).toBeInstanceOf(NotImplementedDriverError);
    expect(e.message).toBe("read: YKUSH YK25838 port all: a YKUSH measures neither voltage nor current, so read is not implemented (as upstream)");
  });
});

describe.skipIf(Boolean(missing))("checks at start say what is wrong", () => {
  test("no YKUSH with that serial: the boards found are listed; none at all", async () => {
    expect((await harness.startError("Ykush", { serial: "YK99999" }, [BOARD, OTHER])).message).toBe(
      "no YKUSH with serial YK99999 (04d8:f2f7); YKUSHs found: 1-2 (serial YK25838), 1-3 (serial YK11111)",
    );
    expect((await harness.startError("Ykush", {}, [{ location: "1-1", kind: "device", vendor: 0x0403, product: 0x6001 }])).message).toBe(
      "no YKUSH found (04d8:f2f7)",
    );
  });

  test("a port that does not exist is refused at load", async () => {
    const { message, sim } = await harness.startError("Ykush", { port: 4 }, [BOARD]);
    expect(message).toBe("port: expected an integer from 1 to 3, got number 4");
    expect(sim.reportsWritten()).toEqual([]);
  });

  test.skipIf(process.getuid?.() !== 0)("a board this user may not open: permission denied, with the hidraw udev rule", async () => {
    const { message } = await harness.startError("Ykush", { serial: "YK25838" }, [{ ...BOARD, mode: "0600" }], { runAs: "65534:65534" });
    expect(message).toBe(
      "/dev/hidraw0: permission denied opening the YKUSH (add a udev rule such as " +
        `'KERNEL=="hidraw*", ATTRS{idVendor}=="04d8", ATTRS{idProduct}=="f2f7", MODE="0660", GROUP="plugdev"' ` +
        "in /etc/udev/rules.d/50-jumpstarter.rules and the exporter's user to group plugdev, then replug the device)",
    );
  });
});
