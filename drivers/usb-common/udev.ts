/**
 * What to tell a user who may not open a device: the udev rule that grants it,
 * for the device's own ids, so it can be pasted as it is.
 */
import type { UsbDevice } from "./sysfs.ts";

const hex4 = (n: number) => n.toString(16).padStart(4, "0");

/** A udev rule giving group plugdev the device's usbfs node (libusb). */
export function usbRule(d: { vendorId: number; productId: number }): string {
  return `SUBSYSTEM=="usb", ATTR{idVendor}=="${hex4(d.vendorId)}", ATTR{idProduct}=="${hex4(d.productId)}", MODE="0660", GROUP="plugdev"`;
}

/** A udev rule giving group plugdev the device's hidraw nodes. */
export function hidrawRule(d: { vendorId: number; productId: number }): string {
  return `KERNEL=="hidraw*", ATTRS{idVendor}=="${hex4(d.vendorId)}", ATTRS{idProduct}=="${hex4(d.productId)}", MODE="0660", GROUP="plugdev"`;
}

export function permissionHint(d: UsbDevice, kind: "usb" | "hidraw" = "usb"): string {
  const rule = kind === "usb" ? usbRule(d) : hidrawRule(d);
  return `add a udev rule such as '${rule}' in /etc/udev/rules.d/50-jumpstarter.rules and the exporter's user to group plugdev, then replug the device`;
}
