/**
 * The NOYITO relays against boards simulated with umockdev (drivers/usb-common/testing):
 * the serial board is a CH340 whose /dev/ttyUSB0 is a pty the simulation answers on,
 * the HID board a hidraw node; every byte and report the driver sends is logged,
 * so the tests check them exactly, as upstream's tests check its mocks' calls.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { DeadlineExceededError, NotImplementedDriverError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { DriverHarness, logged } from "../../src/testing/driver-harness.ts";
import { failure } from "../testing/failure.ts";
import { simulationMissing, usbDevices, type DeviceSpec } from "../usb-common/testing/sim.ts";
import { NoyitoPowerClient } from "./client.ts";
import { buildCommand, channelsState, parseStatus } from "./protocol.ts";

const missing = simulationMissing();
if (missing) console.warn(`NOYITO relay driver tests skipped: ${missing}`);

const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), usbDevices);
afterEach(() => harness.closeAll());

const SERIAL_BOARD: DeviceSpec = { location: "1-3", kind: "noyito-serial" };
const HID_BOARD: DeviceSpec = { location: "1-4", kind: "noyito-hid", serial: "R1" };
const hex = (...commands: Uint8Array[]) => commands.map((c) => Buffer.from(c).toString("hex")).join("");

test("commands and status lines as upstream's protocol has them", () => {
  expect(hex(buildCommand(1, 1))).toBe("a00101a2");
  expect(hex(buildCommand(2, 0))).toBe("a00200a2");
  expect(hex(buildCommand(0x0f, 2))).toBe("a00f02b1");
  const status = parseStatus("CH1:ON \r\nCH2:OFF \r\n");
  expect(status).toEqual({ CH1: "ON", CH2: "OFF" });
  expect(channelsState(status, [2], "board")).toBe("off");
  expect(channelsState(status, [1, 2], "board")).toBe("partial");
  expect(() => channelsState(status, [3], "board")).toThrow('board did not report channel 3: it answered {"CH1":"ON","CH2":"OFF"}');
});

describe.skipIf(Boolean(missing))("NoyitoPowerSerial", () => {
  test("on and off write upstream's 4-byte commands at 9600 baud; status asks with 0xFF and reads the channel's line", async () => {
    const { sim, client, logs } = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB0", channel: 2 }, [SERIAL_BOARD]);
    expect(client).toBeInstanceOf(NoyitoPowerClient);
    expect(sim.ttyReceived()).toBe("");
    await client.on();
    await eventually(async () => expect((await sim.state())["1-3"].channels).toEqual({ 1: false, 2: true }));
    expect(sim.ttyReceived()).toBe("a00201a3");
    expect(await client.status()).toBe("on");
    await client.off();
    await eventually(() => expect(sim.ttyReceived()).toBe("a00201a3ffa00200a2"));
    expect(await client.status()).toBe("off");
    await eventually(() => expect(logs).toEqual(["NOYITO relay on /dev/ttyUSB0: channel 2 on", "NOYITO relay on /dev/ttyUSB0: channel 2 off"]));
  });

  test("all_channels switches both, and status says partial when they disagree", async () => {
    const { sim, client } = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB0", all_channels: true }, [SERIAL_BOARD]);
    await client.on();
    await eventually(() => expect(sim.ttyReceived()).toBe(hex(buildCommand(1, 1), buildCommand(2, 1))));
    expect(await client.status()).toBe("on");
    const one = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB0", channel: 1 }, [SERIAL_BOARD]);
    await one.client.on();
    await eventually(async () => expect((await one.sim.state())["1-3"].channels).toEqual({ 1: true, 2: false }));
    const both = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB0", all_channels: true }, [SERIAL_BOARD]);
    expect(await both.client.status()).toBe("off");
    await one.client.off();
    await eventually(async () => expect((await one.sim.state())["1-3"].channels).toEqual({ 1: false, 2: false }));
  });

  test("read is UNIMPLEMENTED, as upstream", async () => {
    const { client } = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB0" }, [SERIAL_BOARD]);
    const e = await failure((async () => {
      for await (const _ of client.read()) {
        // nothing comes
      }
    })());
    expect(e).toBeInstanceOf(NotImplementedDriverError);
    expect(e.message).toBe("read: NOYITO relay on /dev/ttyUSB0: a relay measures neither voltage nor current, so read is not implemented (as upstream)");
  });

  test("a port that is another adapter starts with a warning naming it; a board that does not answer status fails in 2 s", async () => {
    const ftdi: DeviceSpec = { location: "1-5", kind: "device", vendor: 0x0403, product: 0x6001, product_name: "FT232R USB UART", tty: "ttyUSB1" };
    const { sim, client } = await harness.start<NoyitoPowerClient>("NoyitoPowerSerial", { port: "/dev/ttyUSB1" }, [SERIAL_BOARD, ftdi]);
    await logged(sim, "/dev/ttyUSB1 is a 0403:6001 FT232R USB UART at 1-5, not the NOYITO board's CH340 (1a86:7523): is this the right port?");
    const started = performance.now();
    const e = await failure(client.status());
    expect(e).toBeInstanceOf(DeadlineExceededError);
    expect(e.message).toBe("status: NOYITO relay on /dev/ttyUSB1 did not answer the status query within 2 s");
    expect(performance.now() - started).toBeGreaterThanOrEqual(1900);
    expect(sim.ttyReceived("1-5")).toBe("ff");
  });

  test("checks at start: a port that does not exist lists the USB serial ports; a channel the board lacks", async () => {
    expect((await harness.startError("NoyitoPowerSerial", { port: "/dev/ttyUSB7" }, [SERIAL_BOARD])).message).toBe(
      "/dev/ttyUSB7 does not exist (USB serial ports here: /dev/ttyUSB0)",
    );
    expect((await harness.startError("NoyitoPowerSerial", { port: "/dev/ttyUSB0", channel: 3 }, [SERIAL_BOARD])).message).toBe(
      "channel: expected an integer from 1 to 2, got number 3",
    );
    expect((await harness.startError("NoyitoPowerSerial", { port: "/dev/null" }, [SERIAL_BOARD])).message).toBe(
      "/dev/null is not a serial port (not a terminal)",
    );
  });

  test.skipIf(process.getuid?.() !== 0)("a port this user may not open: permission denied, and the group to join", async () => {
    const { message } = await harness.startError("NoyitoPowerSerial", { port: "/dev/ttyUSB0" }, [{ ...SERIAL_BOARD, mode: "0600" }], { runAs: "65534:65534" });
    expect(message).toBe("/dev/ttyUSB0: permission denied (add the exporter's user to group dialout)");
  });
});

describe.skipIf(Boolean(missing))("NoyitoPowerHID", () => {
  test("on and off write upstream's reports (report ID 0, then the command); status reads the channels' lines", async () => {
    const { sim, client } = await harness.start<NoyitoPowerClient>("NoyitoPowerHID", { channel: 3 }, [HID_BOARD]);
    await client.on();
    await eventually(() => expect(sim.reportsWritten("1-4")).toEqual(["00a00301a4"]));
    expect((await sim.state())["1-4"].channels).toEqual({ 1: false, 2: false, 3: true, 4: false });
    expect(await client.status()).toBe("on");
    expect(sim.reportsWritten("1-4").at(-1)).toBe("00a00f02b1");
    await client.off();
    await eventually(() => expect(sim.reportsWritten("1-4").at(-1)).toBe("00a00300a3"));
    expect(await client.status()).toBe("off");
  });

  test("an 8-channel board with all_channels fires all eight", async () => {
    const { sim, client } = await harness.start<NoyitoPowerClient>("NoyitoPowerHID", { num_channels: 8, all_channels: true }, [{ ...HID_BOARD, channels: 8 }]);
    await client.on();
    await eventually(() => expect(sim.reportsWritten("1-4")).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((c) => `00${hex(buildCommand(c, 1))}`)));
    expect(await client.status()).toBe("on");
  });

  test("checks at start: no board with those ids; several boards; settings upstream refuses", async () => {
    expect((await harness.startError("NoyitoPowerHID", {}, [SERIAL_BOARD])).message).toBe("no NOYITO HID relay found (140b:07d7)");
    const two = await harness.start<NoyitoPowerClient>("NoyitoPowerHID", {}, [HID_BOARD, { ...HID_BOARD, location: "1-6", serial: "R2" }]);
    await logged(two.sim, "several NOYITO HID relays found: using the one at 1-4 (also found: 1-6 (serial R2)); set serial to choose");
    const chosen = await harness.start<NoyitoPowerClient>("NoyitoPowerHID", { serial: "R2" }, [HID_BOARD, { ...HID_BOARD, location: "1-6", serial: "R2" }]);
    await chosen.client.on();
    await eventually(() => expect(chosen.sim.reportsWritten("1-6")).toEqual(["00a00101a2"]));
    expect(chosen.sim.reportsWritten("1-4")).toEqual([]);
    expect((await harness.startError("NoyitoPowerHID", { num_channels: 6 }, [HID_BOARD])).message).toBe("num_channels must be 4 or 8, got 6");
    expect((await harness.startError("NoyitoPowerHID", { channel: 5 }, [HID_BOARD])).message).toBe("channel must be 1..4, got 5");
  });
});
