/**
 * SDWire against SDWires simulated with umockdev (drivers/usb-common/testing): the
 * simulated FT200X logs every control transfer the driver sends (the mux follows
 * CBUS0), and its card reader's disk is a file that holds the card's bytes while
 * the host has the card and looks empty (no medium) while the DUT has it.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { DeadlineExceededError, DriverError, InvalidArgumentError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { StorageMuxFlasherClient } from "../storage/client.ts";
import { DriverHarness, logged } from "../../src/testing/driver-harness.ts";
import { failure } from "../testing/failure.ts";
import { simulationMissing, usbDevices, type DeviceSpec, type UsbSim } from "../usb-common/testing/sim.ts";

const missing = simulationMissing();
if (missing) console.warn(`SDWire driver tests skipped: ${missing}`);

const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), usbDevices);
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "jmp-sdwire-"));
});
afterEach(async () => {
  await harness.closeAll();
  rmSync(dir, { recursive: true, force: true });
});

const DISK = 1 << 20;
const SDWIRE: DeviceSpec = { location: "1-1", kind: "sdwire", serial: "sdw-1", disk_size: DISK, mux: "dut" };
/** No leeway after a write in tests (upstream waits 6 s). */
const FAST = { storage_leeway: 0 };

const SET_BITMODE = (pins: number) => ({ bmRequestType: "0x40", bRequest: 11, wValue: `0x${(0x2000 | pins).toString(16)}`, wIndex: 0, wLength: 0 });
const READ_PINS = { bmRequestType: "0xc0", bRequest: 12, wValue: "0x0000", wIndex: 0, wLength: 1 };
const sent = (sim: UsbSim) =>
  sim.transfers("1-1.2").map(({ bmRequestType, bRequest, wValue, wIndex, wLength }) => ({ bmRequestType, bRequest, wValue, wIndex, wLength }));

/** An image of `size` bytes that differ from block to block. */
function image(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE(i ^ 0x5a5a5a5a, i);
  return b;
}

async function diskBytes(sim: UsbSim): Promise<Buffer> {
  return readFileSync((await sim.state())["1-1.2"].disk);
}

describe.skipIf(Boolean(missing))("SDWire", () => {
  test("at start finds the FT200X and its reader's disk, and reads the mux; host and dut switch CBUS0 as upstream does", async () => {
    const { sim, client } = await harness.start<StorageMuxFlasherClient>("SDWire", {}, [SDWIRE]);
    expect(client).toBeInstanceOf(StorageMuxFlasherClient);
    await logged(sim, "SDWire sdw-1 (1-1.2 (04e8:6001 SRPOL sd-wire, serial sdw-1)), card reader disk /dev/sda: the card is on the DUT side");
    expect(sent(sim)).toEqual([READ_PINS]);
    await client.host();
    expect((await sim.state())["1-1.2"].mux).toBe("host");
    await client.dut();
    expect((await sim.state())["1-1.2"].mux).toBe("dut");
    await client.off();
    expect((await sim.state())["1-1.2"].mux).toBe("host");
    expect(sent(sim)).toEqual([READ_PINS, SET_BITMODE(0xf1), SET_BITMODE(0xf0), SET_BITMODE(0xf1)]);
    // Only the FT200X is addressed: not its hub, not the reader.
    expect(sim.transfers().every((t) => t.device === "1-1.2")).toBe(true);
  });

  test("flash writes the image to the reader's disk with the card on the host, then gives it to the DUT; dump reads it back", async () => {
    const { sim, client } = await harness.start<StorageMuxFlasherClient>("SDWire", FAST, [SDWIRE]);
    const img = image(300_000);
    const file = join(dir, "disk.img");
    writeFileSync(file, img);
    const result = await client.flash(file);
    expect(result).toMatchObject({ written: img.length });
    // host (the client), host (the write makes sure), dut (the client, after the write).
    expect(sent(sim).slice(1)).toEqual([SET_BITMODE(0xf1), SET_BITMODE(0xf1), SET_BITMODE(0xf0)]);
    expect((await sim.state())["1-1.2"].mux).toBe("dut");
    // While the DUT has the card the host sees no medium.
    expect((await diskBytes(sim)).length).toBe(0);
    await client.host();
    const disk = await diskBytes(sim);
    expect(disk.length).toBe(DISK);
    expect(disk.subarray(0, img.length).equals(img)).toBe(true);

    const out = join(dir, "dump.img");
    await client.dump(out);
    expect(readFileSync(out).equals(disk)).toBe(true);
    expect((await sim.state())["1-1.2"].mux).toBe("dut");
  });

  test("a gzip image is decompressed on the way (the runtime's negotiation), and verify reads the card back", async () => {
    const { sim, client } = await harness.start<StorageMuxFlasherClient>("SDWire", { ...FAST, verify: true }, [SDWIRE]);
    const img = image(200_000);
    const file = join(dir, "disk.img.gz");
    writeFileSync(file, gzipSync(img));
    const result = await client.flash(file);
    expect(result).toMatchObject({ written: img.length, sha256: new Bun.CryptoHasher("sha256").update(img).digest("hex") });
    await client.host();
    expect((await diskBytes(sim)).subarray(0, img.length).equals(img)).toBe(true);
  });

  test("an image larger than the card is refused; a card that never shows on the host times out naming the disk", async () => {
    const big = await harness.start<StorageMuxFlasherClient>("SDWire", FAST, [SDWIRE]);
    const file = join(dir, "big.img");
    writeFileSync(file, image(DISK + 4096));
    const e = await failure(big.client.flash(file));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toContain("the image is larger than the storage (1.0 MiB)");
    expect((await big.sim.state())["1-1.2"].mux).toBe("dut");

    const empty = await harness.start<StorageMuxFlasherClient>("SDWire", { ...FAST, storage_timeout: 0.5 }, [{ ...SDWIRE, disk_size: 0 }]);
    writeFileSync(file, image(4096));
    const started = performance.now();
    const late = await failure(empty.client.flash(file));
    expect(late).toBeInstanceOf(DeadlineExceededError);
    expect(late.message).toContain("the SD card did not appear on the host within 0.5 s (/dev/sda has no medium (size 0): is a card in the SDWire?)");
    expect(performance.now() - started).toBeGreaterThanOrEqual(450);
  });

  test("the card cannot go to the DUT while it is being written", async () => {
    const { client, logs } = await harness.start<StorageMuxFlasherClient>("SDWire", { storage_leeway: 3 }, [SDWIRE]);
    const file = join(dir, "disk.img");
    writeFileSync(file, image(8192));
    await client.host();
    const writing = client.writeLocalFile(file);
    // The write holds the card through its leeway after the sync: a dut then is refused.
    await eventually(() => expect(logs.filter((l) => l.startsWith("wrote 8.0 KiB"))).toHaveLength(1));
    const e = await failure(client.dut());
    expect(e).toBeInstanceOf(DriverError);
    expect(e.message).toBe("dut: cannot give the card to the DUT while writing it");
    await writing;
    await client.dut();
  });
});

describe.skipIf(Boolean(missing))("checks at start say what is wrong", () => {
  test("no SDWire: what is there instead; several without a serial; an unprogrammed FT200X only by its serial", async () => {
    const ft200x: DeviceSpec = { location: "1-1", kind: "sdwire", vendor: 0x0403, product: 0x6015, product_name: "FT200X USB I2C", serial: "FT9X1" };
    expect((await harness.startError("SDWire", {}, [ft200x])).message).toBe(
      'no SDWire found (04e8:6001 "sd-wire"; an unprogrammed one, 0403:6015, is only taken by its serial); found unprogrammed FT200X (0403:6015): 1-1.2 (serial FT9X1)',
    );
    const { sim } = await harness.start<StorageMuxFlasherClient>("SDWire", { serial: "FT9X1" }, [ft200x]);
    expect(sent(sim)).toEqual([READ_PINS]);

    const two = [SDWIRE, { ...SDWIRE, location: "1-2", serial: "sdw-2", disk: "sdb" }];
    expect((await harness.startError("SDWire", {}, two)).message).toBe(
      "several SDWires found: 1-1.2 (serial sdw-1), 1-2.2 (serial sdw-2); set serial to choose one",
    );
    expect((await harness.startError("SDWire", { serial: "sdw-9" }, two)).message).toBe(
      'no SDWire with serial sdw-9 found (04e8:6001 "sd-wire", or an unprogrammed 0403:6015); found SDWires: 1-1.2 (serial sdw-1), 1-2.2 (serial sdw-2)',
    );
  });

  test("two SDWires: each finds its own reader's disk", async () => {
    const two = [SDWIRE, { ...SDWIRE, location: "1-2", serial: "sdw-2", disk: "sdb" }];
    const { sim } = await harness.start<StorageMuxFlasherClient>("SDWire", { serial: "sdw-2" }, two);
    await logged(sim, "SDWire sdw-2 (1-2.2 (04e8:6001 SRPOL sd-wire, serial sdw-2)), card reader disk /dev/sdb");
  });

  test("an FT200X without a card reader next to it", async () => {
    const lone: DeviceSpec[] = [
      { location: "1-1", kind: "hub", vendor: 0x0424, product: 0x2640, ports: 3 },
      { location: "1-1.2", kind: "device", vendor: 0x04e8, product: 0x6001, product_name: "sd-wire", serial: "sdw-1" },
    ];
    expect((await harness.startError("SDWire", {}, lone)).message).toBe(
      "no card reader disk next to SDWire sdw-1 (under its hub 1-1): is the reader's kernel driver (usb-storage) loaded? Or set storage_device",
    );
  });

  test.skipIf(process.getuid?.() !== 0)("an SDWire this user may not open: permission denied, with the udev rule to add", async () => {
    const { message } = await harness.startError("SDWire", {}, [{ ...SDWIRE, mode: "0600" }], { runAs: "65534:65534" });
    expect(message).toBe(
      "/dev/bus/usb/001/004: permission denied opening SDWire sdw-1 (add a udev rule such as " +
        `'SUBSYSTEM=="usb", ATTR{idVendor}=="04e8", ATTR{idProduct}=="6001", MODE="0660", GROUP="plugdev"' ` +
        "in /etc/udev/rules.d/50-jumpstarter.rules and the exporter's user to group plugdev, then replug the device)",
    );
  });
});
