/**
 * Finding one USB device by what a config says (ids, serial, product string) and,
 * when it is not there, saying what is: the messages list the candidates found.
 */
import { UnavailableError } from "@jumpstarter/driver";
import { listUsbDevices, usbId, type UsbDevice } from "./sysfs.ts";

export interface DeviceKind {
  vendorId: number;
  productId: number;
  /** The product string it must have (several products share an FTDI chip's ids). */
  product?: string;
}

export function isKind(d: UsbDevice, k: DeviceKind): boolean {
  return d.vendorId === k.vendorId && d.productId === k.productId && (k.product === undefined || d.product === k.product);
}

/** The devices of these kinds, optionally with this serial. */
export function devicesOfKind(kinds: DeviceKind[], serial?: string, all: UsbDevice[] = listUsbDevices()): UsbDevice[] {
  return all.filter((d) => kinds.some((k) => isKind(d, k)) && (serial === undefined || d.serial === serial));
}

/** `0424:2514 at 1-1 (serial X), 0424:2514 at 1-2` for messages; `none` when empty. */
export function listed(devices: UsbDevice[]): string {
  if (devices.length === 0) return "none";
  return devices.map((d) => `${d.location}${d.serial ? ` (serial ${d.serial})` : ""}`).join(", ");
}

/**
 * The one device of these kinds (with `serial` when given). Without a serial and
 * several found, `several` decides: "first" takes the first (upstream's Ykush
 * does), "error" refuses. Throws UnavailableError naming what was found instead.
 */
export function findOne(
  what: string,
  kinds: DeviceKind[],
  serial: string | undefined,
  several: "first" | "error" = "error",
): { device: UsbDevice; others: UsbDevice[] } {
  const all = listUsbDevices();
  const candidates = devicesOfKind(kinds, undefined, all);
  const ids = kinds.map((k) => `${usbId(k)}${k.product ? ` "${k.product}"` : ""}`).join(" or ");
  if (serial !== undefined) {
    const match = candidates.filter((d) => d.serial === serial);
    if (match.length === 1) return { device: match[0]!, others: [] };
    if (match.length > 1) throw new UnavailableError(`several ${what}s have serial ${serial}: ${listed(match)}`);
    throw new UnavailableError(`no ${what} with serial ${serial} (${ids}); ${what}s found: ${listed(candidates)}${unplugged(all)}`);
  }
  if (candidates.length === 0) throw new UnavailableError(`no ${what} found (${ids})${unplugged(all)}`);
  if (candidates.length > 1 && several === "error") {
    throw new UnavailableError(`several ${what}s found: ${listed(candidates)}; set serial to choose one`);
  }
  return { device: candidates[0]!, others: candidates.slice(1) };
}

/** A hint when the machine shows no USB devices at all (a container without /sys, say). */
function unplugged(all: UsbDevice[]): string {
  return all.length === 0 ? "; this machine shows no USB devices at all in /sys/bus/usb/devices" : "";
}
