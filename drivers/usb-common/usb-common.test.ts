/**
 * The pure parts of usb-common (locations, udev rules, hub protocol decoding) and
 * the numbers the simulation relies on, checked against the C headers: a program
 * compiled here (and for arm64, run under qemu: ../testing/c-headers.ts) prints them.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeHubDescriptor, decodePortStatus, describePortStatus } from "../usbhub/hub.ts";
import { describeOnTargets } from "../testing/c-headers.ts";
import { formatLocation, locationOfSysfsName, parseHubLocation, parsePortLocation } from "./location.ts";
import { hidrawRule, usbRule } from "./udev.ts";

test("port and hub locations as lsusb -t and uhubctl write them", () => {
  expect(parsePortLocation("1-1.2")).toEqual({ bus: 1, ports: [1, 2] });
  expect(parsePortLocation("3-2")).toEqual({ bus: 3, ports: [2] });
  expect(parsePortLocation("1")).toBeUndefined();
  expect(parsePortLocation("1-0")).toBeUndefined();
  expect(parsePortLocation("usb1")).toBeUndefined();
  expect(parseHubLocation("1")).toEqual({ bus: 1, ports: [] });
  expect(parseHubLocation("2-1.4")).toEqual({ bus: 2, ports: [1, 4] });
  expect(formatLocation({ bus: 1, ports: [] })).toBe("1");
  expect(formatLocation({ bus: 1, ports: [1, 3] })).toBe("1-1.3");
  expect(locationOfSysfsName("usb2")).toBe("2");
  expect(locationOfSysfsName("1-1.2")).toBe("1-1.2");
  expect(locationOfSysfsName("1-1.2:1.0")).toBeUndefined();
});

test("udev rules carry the device's own ids, four hex digits each", () => {
  expect(usbRule({ vendorId: 0x424, productId: 0x2514 })).toBe('SUBSYSTEM=="usb", ATTR{idVendor}=="0424", ATTR{idProduct}=="2514", MODE="0660", GROUP="plugdev"');
  expect(hidrawRule({ vendorId: 0x4d8, productId: 0xf2f7 })).toBe('KERNEL=="hidraw*", ATTRS{idVendor}=="04d8", ATTRS{idProduct}=="f2f7", MODE="0660", GROUP="plugdev"');
});

test("hub descriptors and port status, USB 2.0 and SuperSpeed", () => {
  expect(decodeHubDescriptor(new Uint8Array([9, 0x29, 4, 0x01, 0, 50, 0, 0, 0xff]))).toEqual({ ports: 4, switching: "per-port" });
  expect(decodeHubDescriptor(new Uint8Array([9, 0x29, 7, 0x00, 0, 50, 0, 0, 0xff]))).toEqual({ ports: 7, switching: "ganged" });
  expect(decodeHubDescriptor(new Uint8Array([12, 0x2a, 4, 0x02, 0, 50, 0, 0, 0, 0, 0, 0]))).toEqual({ ports: 4, switching: "none" });
  expect(() => decodeHubDescriptor(new Uint8Array([18, 1, 0, 2]))).toThrow("not a hub descriptor: 12010002");
  // powered, connected, enabled, high speed
  const hs = decodePortStatus(new Uint8Array([0x03, 0x05, 0, 0]), false);
  expect(hs).toEqual({ powered: true, connected: true, enabled: true, suspended: false, overcurrent: false, speed: "high", raw: 0x0503 });
  expect(describePortStatus(hs)).toBe("powered, device connected (high speed), enabled");
  expect(decodePortStatus(new Uint8Array([0x01, 0x03, 0, 0]), false).speed).toBe("low");
  // SuperSpeed: power is bit 9, and bit 9 of a USB 2.0 port (low speed) is not power there.
  expect(decodePortStatus(new Uint8Array([0x00, 0x02, 0, 0]), true)).toMatchObject({ powered: true, connected: false });
  expect(decodePortStatus(new Uint8Array([0x00, 0x01, 0, 0]), true).powered).toBe(false);
  expect(describePortStatus(decodePortStatus(new Uint8Array([0x08, 0x00, 0, 0]), false))).toBe("unpowered, nothing connected, OVER-CURRENT");
});

const PROGRAM = String.raw`
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>

int main(void) {
  printf("{\"urb\":[%zu,%zu,%zu,%zu,%zu,%zu,%zu],", sizeof(struct usbdevfs_urb), offsetof(struct usbdevfs_urb, status),
    offsetof(struct usbdevfs_urb, buffer), offsetof(struct usbdevfs_urb, buffer_length),
    offsetof(struct usbdevfs_urb, actual_length), offsetof(struct usbdevfs_urb, usercontext), sizeof(struct usbdevfs_ctrltransfer));
  printf("\"ioctls\":{\"USBDEVFS_CONTROL\":%lu,\"USBDEVFS_SETINTERFACE\":%lu,\"USBDEVFS_SETCONFIGURATION\":%lu,"
    "\"USBDEVFS_GETDRIVER\":%lu,\"USBDEVFS_SUBMITURB\":%lu,\"USBDEVFS_DISCARDURB\":%lu,\"USBDEVFS_REAPURB\":%lu,"
    "\"USBDEVFS_REAPURBNDELAY\":%lu,\"USBDEVFS_CLAIMINTERFACE\":%lu,\"USBDEVFS_RELEASEINTERFACE\":%lu,"
    "\"USBDEVFS_CONNECTINFO\":%lu,\"USBDEVFS_IOCTL\":%lu,\"USBDEVFS_RESET\":%lu,\"USBDEVFS_GET_CAPABILITIES\":%lu,"
    "\"USBDEVFS_DISCONNECT_CLAIM\":%lu,\"USBDEVFS_GET_SPEED\":%lu}}\n",
    (unsigned long)USBDEVFS_CONTROL, (unsigned long)USBDEVFS_SETINTERFACE, (unsigned long)USBDEVFS_SETCONFIGURATION,
    (unsigned long)USBDEVFS_GETDRIVER, (unsigned long)USBDEVFS_SUBMITURB, (unsigned long)USBDEVFS_DISCARDURB,
    (unsigned long)USBDEVFS_REAPURB, (unsigned long)USBDEVFS_REAPURBNDELAY, (unsigned long)USBDEVFS_CLAIMINTERFACE,
    (unsigned long)USBDEVFS_RELEASEINTERFACE, (unsigned long)USBDEVFS_CONNECTINFO, (unsigned long)USBDEVFS_IOCTL,
    (unsigned long)USBDEVFS_RESET, (unsigned long)USBDEVFS_GET_CAPABILITIES, (unsigned long)USBDEVFS_DISCONNECT_CLAIM,
    (unsigned long)USBDEVFS_GET_SPEED);
  return 0;
}
`;

/** The usbdevfs requests the simulation answers, as it numbers them. */
function simulatedIoctls(): Record<string, number> {
  const source = readFileSync(join(import.meta.dir, "testing/umockdev-usb.py"), "utf8");
  const table = source.slice(source.indexOf("USBDEVFS = {"), source.indexOf("}", source.indexOf("USBDEVFS = {")));
  return Object.fromEntries([...table.matchAll(/0x([0-9A-F]+): "(\w+)"/g)].map((m) => [m[2]!, Number.parseInt(m[1]!, 16)]));
}

describeOnTargets("the numbers match the headers", PROGRAM, (program) => {
  test("usbdevfs requests and struct usbdevfs_urb (the simulation)", () => {
    expect(program.build()).toBe("");
    const k = JSON.parse(program.run());
    // The simulation reads status at 4, buffer at 16, buffer_length at 24, writes actual_length at 28.
    expect(k.urb).toEqual([56, 4, 16, 24, 28, 48, 24]);
    expect(k.ioctls).toEqual(simulatedIoctls());
  });
});
