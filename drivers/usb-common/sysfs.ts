/**
 * USB devices as sysfs shows them (/sys/bus/usb/devices): location, ids, class,
 * strings and what hangs below them (HID raw nodes, block devices). Reading sysfs
 * needs no permission on the device itself, so the drivers find and name their
 * device before they open it, and can say what is there instead.
 */
import { posix } from "node:path";
import { listDir, readLink, readText } from "../native/libc.ts";
import { locationOfSysfsName } from "./location.ts";

const DEVICES = "/sys/bus/usb/devices";
export const USB_CLASS_HUB = 0x09;

export interface UsbDevice {
  /** `1-1.2`; `1` for the root hub of bus 1. */
  location: string;
  /** The device's directory under /sys/devices. */
  sysPath: string;
  bus: number;
  devnum: number;
  vendorId: number;
  productId: number;
  deviceClass: number;
  serial?: string;
  product?: string;
  manufacturer?: string;
  /** Hubs: their number of downstream ports. */
  maxchild?: number;
  /** Mbit/s: 1.5, 12, 480, 5000 and up (SuperSpeed). */
  speed?: number;
}

const hex = (text: string | undefined) => (text === undefined ? Number.NaN : Number.parseInt(text, 16));

/** The device at a sysfs directory, or undefined if it is not a USB device. */
export function usbDeviceAt(sysPath: string): UsbDevice | undefined {
  const location = locationOfSysfsName(posix.basename(sysPath));
  const bus = Number(readText(`${sysPath}/busnum`));
  const devnum = Number(readText(`${sysPath}/devnum`));
  const vendorId = hex(readText(`${sysPath}/idVendor`));
  const productId = hex(readText(`${sysPath}/idProduct`));
  if (!location || !bus || !devnum || Number.isNaN(vendorId) || Number.isNaN(productId)) return undefined;
  const maxchild = readText(`${sysPath}/maxchild`);
  return {
    location,
    sysPath,
    bus,
    devnum,
    vendorId,
    productId,
    deviceClass: hex(readText(`${sysPath}/bDeviceClass`)) || 0,
    serial: readText(`${sysPath}/serial`) || undefined,
    product: readText(`${sysPath}/product`) || undefined,
    manufacturer: readText(`${sysPath}/manufacturer`) || undefined,
    maxchild: maxchild === undefined ? undefined : Number(maxchild),
    speed: Number(readText(`${sysPath}/speed`)) || undefined,
  };
}

/** Every USB device (root hubs included), in location order. */
export function listUsbDevices(): UsbDevice[] {
  const found: UsbDevice[] = [];
  for (const entry of listDir(DEVICES)) {
    if (!locationOfSysfsName(entry.name)) continue;
    const target = readLink(`${DEVICES}/${entry.name}`);
    const device = usbDeviceAt(target ? posix.resolve(DEVICES, target) : `${DEVICES}/${entry.name}`);
    if (device) found.push(device);
  }
  return found.sort((a, b) => compareLocations(a.location, b.location));
}

function compareLocations(a: string, b: string): number {
  const parts = (l: string) => l.split(/[-.]/).map(Number);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d) return d;
  }
  return 0;
}

export function usbId(d: { vendorId: number; productId: number }): string {
  return `${d.vendorId.toString(16).padStart(4, "0")}:${d.productId.toString(16).padStart(4, "0")}`;
}

/** `0424:2514 Microchip USB2514 Hub, serial X`, as lsusb would name it. */
export function deviceName(d: UsbDevice): string {
  const name = [d.manufacturer, d.product].filter(Boolean).join(" ");
  return `${usbId(d)}${name ? ` ${name}` : ""}${d.serial ? `, serial ${d.serial}` : ""}`;
}

/** `1-1.2 (0424:2514 Microchip USB2514 Hub)`. */
export function describeDevice(d: UsbDevice): string {
  return `${d.location} (${deviceName(d)})`;
}

/** The usbfs node libusb opens for the device. */
export function usbfsNode(d: { bus: number; devnum: number }): string {
  return `/dev/bus/usb/${String(d.bus).padStart(3, "0")}/${String(d.devnum).padStart(3, "0")}`;
}

/** The device node a sysfs device directory names in its uevent (DEVNAME=…), as /dev/…. */
export function devnodeOf(sysPath: string): string | undefined {
  const uevent = readText(`${sysPath}/uevent`);
  const name = uevent?.split("\n").find((l) => l.startsWith("DEVNAME="))?.slice("DEVNAME=".length);
  return name ? (name.startsWith("/") ? name : `/dev/${name}`) : undefined;
}

/** The hidraw nodes of a USB device's interfaces, by interface number. */
export function hidrawNodes(d: UsbDevice): { iface: number; node: string }[] {
  const nodes: { iface: number; node: string }[] = [];
  for (const iface of listDir(d.sysPath)) {
    const m = /^\d+-[\d.]+:\d+\.(\d+)$/.exec(iface.name);
    if (!m || !iface.dir) continue;
    for (const hid of listDir(`${d.sysPath}/${iface.name}`)) {
      if (!hid.dir || !/^[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{4}\.[0-9A-F]+$/i.test(hid.name)) continue;
      for (const raw of listDir(`${d.sysPath}/${iface.name}/${hid.name}/hidraw`)) {
        if (!raw.name.startsWith("hidraw")) continue;
        const sysPath = `${d.sysPath}/${iface.name}/${hid.name}/hidraw/${raw.name}`;
        nodes.push({ iface: Number(m[1]), node: devnodeOf(sysPath) ?? `/dev/${raw.name}` });
      }
    }
  }
  return nodes;
}

/**
 * The block devices (whole disks, not partitions) anywhere below a sysfs
 * directory, e.g. the SD card reader's disk below a hub: `{ name: "sda", node: "/dev/sda" }`.
 * Follows directories only (sysfs links lead back up the tree).
 */
export function blockDevicesBelow(sysPath: string, depth = 8): { name: string; node: string; sysPath: string }[] {
  const found: { name: string; node: string; sysPath: string }[] = [];
  const walk = (dir: string, left: number) => {
    for (const entry of listDir(dir)) {
      if (!entry.dir) continue;
      const path = `${dir}/${entry.name}`;
      if (entry.name === "block") {
        for (const disk of listDir(path)) {
          if (disk.dir) found.push({ name: disk.name, node: devnodeOf(`${path}/${disk.name}`) ?? `/dev/${disk.name}`, sysPath: `${path}/${disk.name}` });
        }
      } else if (left > 0) {
        walk(path, left - 1);
      }
    }
  };
  walk(sysPath, depth);
  return found;
}

/**
 * The kernel's name of the tty at `path`: its own name, or that of the first node its
 * symlinks lead to that sysfs knows (/dev/serial/by-id/usb-1a86_…-port0 → ttyUSB0).
 */
export function ttyName(path: string): string | undefined {
  let current = path;
  for (let hops = 0; hops < 16; hops++) {
    const name = posix.basename(current);
    if (readLink(`/sys/class/tty/${name}`) !== undefined) return name;
    const target = readLink(current);
    if (target === undefined) return undefined;
    current = posix.resolve(posix.dirname(current), target);
  }
  return undefined;
}

/** The USB device a tty (ttyUSB0, ttyACM0) belongs to; undefined for one that is not on USB (a pty, a UART). */
export function usbDeviceOfTty(name: string): UsbDevice | undefined {
  const link = readLink(`/sys/class/tty/${name}`);
  if (!link) return undefined;
  // …/1-1.3/1-1.3:1.0/ttyUSB0/tty/ttyUSB0 (usb-serial) or …/1-1.3/1-1.3:1.0/tty/ttyACM0 (CDC ACM): up to the device.
  let dir = posix.resolve("/sys/class/tty", link);
  for (let up = 0; up < 5 && dir.startsWith("/sys/devices/"); up++) {
    dir = posix.dirname(dir);
    const device = usbDeviceAt(dir);
    if (device) return device;
  }
  return undefined;
}

/** The serial ports this machine has on USB (ttyUSB*, ttyACM*), for messages. */
export function usbSerialPorts(): string[] {
  return listDir("/sys/class/tty").map((e) => e.name).filter((n) => /^tty(USB|ACM)\d+$/.test(n)).map((n) => `/dev/${n}`);
}
