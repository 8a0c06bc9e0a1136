/**
 * USB drivers end to end: dist/jmp as a user runs it (`jmp shell --exporter-config
 * lab.yaml -- j …`) on a bench of USB devices simulated with umockdev
 * (drivers/usb-common/testing/umockdev-usb.py): a hub whose port powers a board, a
 * YKUSH, an SDWire with its card, and NOYITO serial and HID relays. The exporter's
 * libusb, hidraw and tty traffic is checked as the simulated devices log it.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { simulationMissing, usbDevices, type DeviceSpec, type UsbSim } from "../drivers/usb-common/testing/sim.ts";
import { missingPython, PYTHON } from "./interop/procs.ts";
import { simulatedShells } from "./simulated-shells.ts";

const missing = simulationMissing();
if (missing) console.warn(`USB end-to-end tests skipped: ${missing}`);

const BENCH: DeviceSpec[] = [
  { location: "1-1", kind: "hub", vendor: 0x0424, product: 0x2514, ports: 4, product_name: "USB2514B" },
  { location: "1-1.2", kind: "device", vendor: 0x0403, product: 0x6001, product_name: "FT232R USB UART" },
  { location: "1-2", kind: "ykush", serial: "YK25838" },
  { location: "1-3", kind: "sdwire", serial: "sdw-1", disk_size: 1 << 20, mux: "dut" },
  { location: "1-4", kind: "noyito-serial" },
  { location: "1-5", kind: "noyito-hid", channels: 8 },
];

const LAB = `
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: lab
  name: usb-bench
export:
  power:
    type: UsbHubPort
    config:
      location: 1-1.2
  ykush:
    type: jumpstarter_driver_yepkit.driver.Ykush
    config:
      serial: YK25838
      port: "1"
  storage:
    type: jumpstarter_driver_sdwire.driver.SDWire
    config:
      storage_leeway: 0
  relay:
    type: jumpstarter_driver_noyito_relay.driver.NoyitoPowerSerial
    config:
      port: /dev/ttyUSB0
      channel: 2
  relay8:
    type: jumpstarter_driver_noyito_relay.driver.NoyitoPowerHID
    config:
      num_channels: 8
      channel: 5
`;

const shells = simulatedShells("jmp-usb-", usbDevices, missing);
const shell = (script: string, devices: DeviceSpec[] = BENCH, lab = LAB, wrap: string[] = []): UsbSim => shells.run(script, devices, lab, wrap);

const sent = (sim: UsbSim, device: string) => sim.transfers(device).map((t) => `${t.bmRequestType} ${t.bRequest} ${t.wValue} ${t.wIndex}`);

describe.skipIf(Boolean(missing))("a USB bench through dist/jmp", () => {
  test("hub port power, YKUSH, NOYITO relays and an SDWire flash, with the exact traffic each device saw", async () => {
    const img = Buffer.alloc(200_000);
    for (let i = 0; i < img.length; i += 4) img.writeUInt32LE(i * 2654435761 >>> 0, i);
    writeFileSync(join(shells.dir.path, "sd.img"), img);
    const xz = Bun.spawnSync(["xz", "-k", "-T1", join(shells.dir.path, "sd.img")]);
    expect(xz.exitCode).toBe(0);
    const sim = shell([
      "j power off", "j power read", "j power on",
      "j ykush on",
      "j relay on", "j relay status",
      "j relay8 on", "j relay8 status",
      `j storage flash ${join(shells.dir.path, "sd.img.xz")} 2>/dev/null`,
      "j storage host",
      "echo done",
    ].join(" && "));
    expect(await sim.proc.exited).toBe(0);
    expect(sim.output.filter((l) => !/^(INFO|WARN)/.test(l))).toEqual([
      "voltage=0 V  current=0 A  apparent_power=0 VA",
      "on",
      "on",
      "done",
    ]);

    // The hub: descriptor and status at start, then off, on, each checked by GET_STATUS; read is one GET_STATUS.
    expect(sent(sim, "1-1")).toEqual([
      "0xa0 6 0x2900 0", "0xa3 0 0x0000 2",
      "0x23 1 0x0008 2", "0xa3 0 0x0000 2",
      "0xa3 0 0x0000 2",
      "0x23 3 0x0008 2", "0xa3 0 0x0000 2",
    ]);
    // The YKUSH: port 1 off when the session starts (upstream's default), then on.
    expect(sim.reportsWritten("1-2").map((r) => r.slice(0, 4))).toEqual(["0001", "0011"]);
    expect(sim.reportsWritten("1-2").every((r) => r.length === 130)).toBe(true);
    // The serial relay: channel 2 on, then the status query; the HID relay: channel 5 on, then its status query.
    expect(sim.ttyReceived("1-4")).toBe("a00201a3ff");
    expect(sim.reportsWritten("1-5")).toEqual(["00a00501a6", "00a00f02b1"]);
    // The SDWire: pins read at start; host, host (the write), DUT (the flash's end), host.
    expect(sent(sim, "1-3.2")).toEqual(["0xc0 12 0x0000 0", "0x40 11 0x20f1 0", "0x40 11 0x20f1 0", "0x40 11 0x20f0 0", "0x40 11 0x20f1 0"]);
    const state = await sim.state();
    expect(state["1-1"].ports[2].powered).toBe(true);
    expect(state["1-2"].ports).toEqual({ 1: true, 2: true, 3: true });
    expect(state["1-4"].channels).toEqual({ 1: false, 2: true });
    expect(state["1-5"].channels[5]).toBe(true);
    expect(state["1-3.2"].mux).toBe("host");
    const disk = readFileSync(state["1-3.2"].disk);
    expect(disk.length).toBe(1 << 20);
    expect(disk.subarray(0, img.length).equals(img)).toBe(true);
  });

  test("a config naming a hub that is not there does not start: exit 2 with the file, the key and the hubs there are", async () => {
    const lab = LAB.replace("location: 1-1.2", "location: 1-7.2");
    const sim = shell("j power on", BENCH, lab);
    expect(await sim.proc.exited).toBe(2);
    expect(sim.output).toEqual([`Error: ${shells.dir.path}/lab.yaml: export.power.config: no USB hub at 1-7 (found hubs: 1, 1-1, 1-3)`]);
    expect(sim.transfers()).toEqual([]);
  });
});

const noPython = missing ?? missingPython();
const CLIENT = join(import.meta.dir, "interop/client.py");

describe.skipIf(Boolean(noPython))("upstream's Python client (test/interop/client.py speaks as it does) on the USB bench", () => {
  test("each driver reports upstream's client path, and the PowerClient calls drive the hub port with readings upstream's PowerReading accepts", async () => {
    const sim = shell(`${PYTHON} ${CLIENT} env report && ${PYTHON} ${CLIENT} env http-power`);
    expect(await sim.proc.exited).toBe(0);
    const [report, power] = sim.output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const clients = Object.fromEntries(Object.entries(report.tree.children as Record<string, { client: string }>).map(([k, v]) => [k, v.client]));
    expect(clients).toEqual({
      power: "jumpstarter_driver_power.client.PowerClient",
      ykush: "jumpstarter_driver_power.client.PowerClient",
      storage: "jumpstarter_driver_opendal.client.StorageMuxFlasherClient",
      relay: "jumpstarter_driver_noyito_relay.client.NoyitoPowerClient",
      relay8: "jumpstarter_driver_noyito_relay.client.NoyitoPowerClient",
    });
    // on, read, off, read, then a cycle (off, on); client.py checks each reading's voltage and current are floats.
    expect(power.client).toBe("jumpstarter_driver_power.client.PowerClient");
    expect(power.read_on).toEqual([{ voltage: 5, current: 0, powered: true, connected: true, enabled: true, suspended: false, overcurrent: false, speed: "high", hub: "1-1", port: 2 }]);
    expect(power.read_off).toEqual([{ voltage: 0, current: 0, powered: false, connected: false, enabled: false, suspended: false, overcurrent: false, hub: "1-1", port: 2 }]);
    expect(sent(sim, "1-1").filter((t) => t.startsWith("0x23")).map((t) => t.split(" ")[1])).toEqual(["3", "1", "1", "3"]);
  });
});

/** The file libusb-1.0.so.0 resolves to, to hide it in a mount namespace. */
function libusbFile(): string | undefined {
  const line = Bun.spawnSync(["/sbin/ldconfig", "-p"]).stdout.toString().split("\n").find((l) => l.includes("libusb-1.0.so.0 ") && l.includes("x86-64"));
  return line?.split("=> ")[1]?.trim();
}

const canHide = !missing && process.getuid?.() === 0 && Bun.spawnSync(["unshare", "-m", "true"]).exitCode === 0 && libusbFile() !== undefined;

describe.skipIf(!canHide)("an exporter host without libusb", () => {
  test("a USB driver does not start, and the error names the Debian package", async () => {
    const lab = LAB.split("  ykush:")[0]!;
    // libusb-1.0.so.0 replaced by /dev/null in a private mount namespace: dlopen fails as on a host without the package.
    const sim = shell("j power on", BENCH, lab, ["unshare", "-m", "sh", "-c", `mount --bind /dev/null ${libusbFile()} && exec "$@"`, "hide-libusb"]);
    expect(await sim.proc.exited).toBe(2);
    expect(sim.output).toHaveLength(1);
    expect(sim.output[0]).toStartWith(`Error: ${shells.dir.path}/lab.yaml: export.power.config: libusb-1.0 is not installed on this exporter (cannot load libusb-1.0.so.0: `);
    expect(sim.output[0]).toEndWith("): install it with 'apt-get install libusb-1.0-0'");
  });
});
