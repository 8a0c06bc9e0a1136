/**
 * USB locations as Linux names them in /sys/bus/usb/devices and as uhubctl and
 * `lsusb -t` users write them: `1-1.2` is bus 1, port 1 of the root hub, then
 * port 2 of the hub there. A hub is named by its own location (`1-1`), and the
 * root hub of bus 1 by `1` (sysfs calls it usb1).
 */

export interface UsbLocation {
  bus: number;
  /** Port numbers from the root hub down; empty for a root hub. */
  ports: number[];
}

const PORT_LOCATION = /^(\d+)-(\d+(?:\.\d+)*)$/;
const HUB_LOCATION = /^(\d+)(?:-(\d+(?:\.\d+)*))?$/;

function positive(text: string): number {
  return Number.parseInt(text, 10);
}

/** `1-1.2` → bus 1, ports [1, 2]; undefined if it is not one. */
export function parsePortLocation(text: string): UsbLocation | undefined {
  const m = PORT_LOCATION.exec(text.trim());
  if (!m) return undefined;
  const ports = m[2]!.split(".").map(positive);
  if (positive(m[1]!) < 1 || ports.some((p) => p < 1)) return undefined;
  return { bus: positive(m[1]!), ports };
}

/** `1-1` → bus 1, ports [1]; `1` (a root hub) → bus 1, ports []; undefined if it is neither. */
export function parseHubLocation(text: string): UsbLocation | undefined {
  const m = HUB_LOCATION.exec(text.trim());
  if (!m) return undefined;
  const ports = m[2] ? m[2].split(".").map(positive) : [];
  if (positive(m[1]!) < 1 || ports.some((p) => p < 1)) return undefined;
  return { bus: positive(m[1]!), ports };
}

export function formatLocation(l: UsbLocation): string {
  return l.ports.length ? `${l.bus}-${l.ports.join(".")}` : `${l.bus}`;
}

/** The location of a device in sysfs by its directory name: `usb1` → `1`, `1-1.2` → `1-1.2`; undefined for interfaces and others. */
export function locationOfSysfsName(name: string): string | undefined {
  const root = /^usb(\d+)$/.exec(name);
  if (root) return root[1];
  return PORT_LOCATION.test(name) ? name : undefined;
}
