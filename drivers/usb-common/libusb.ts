/**
 * Control transfers to a USB device through the system's libusb-1.0, called with
 * `bun:ffi`. Loaded on first use, so a machine without USB (or without libusb)
 * still starts jmp; a driver that needs it says which package to install.
 *
 * Why not the `usb` npm package: it loads and enumerates inside the compiled
 * binary on x64 and arm64, but it is built on nusb, which opens /dev/bus/usb and
 * issues its ioctls with raw system calls, so umockdev cannot stand in for a
 * device and no driver on it could be tested without hardware (see README.md).
 * libusb goes through libc, as umockdev expects.
 *
 * Only functions with scalar arguments are used (no libusb structs), so nothing
 * here depends on the architecture's struct layout. Transfers are synchronous and
 * bounded by a timeout: each is one request to a hub, a mux or a relay.
 */
import { DriverError, UnavailableError } from "@jumpstarter/driver";
import { usbfsNode, type UsbDevice } from "./sysfs.ts";
import { permissionHint } from "./udev.ts";

export const LIBUSB_PACKAGE = "libusb-1.0-0";
const LIBRARY = "libusb-1.0.so.0";
export const TRANSFER_TIMEOUT_MS = 1000;

/** bmRequestType bits (USB 2.0 §9.3). */
export const REQUEST = {
  IN: 0x80,
  OUT: 0x00,
  STANDARD: 0x00,
  CLASS: 0x20,
  VENDOR: 0x40,
  DEVICE: 0x00,
  INTERFACE: 0x01,
  OTHER: 0x03,
} as const;

const ERRORS: Record<number, string> = {
  [-1]: "LIBUSB_ERROR_IO",
  [-2]: "LIBUSB_ERROR_INVALID_PARAM",
  [-3]: "LIBUSB_ERROR_ACCESS",
  [-4]: "LIBUSB_ERROR_NO_DEVICE",
  [-5]: "LIBUSB_ERROR_NOT_FOUND",
  [-6]: "LIBUSB_ERROR_BUSY",
  [-7]: "LIBUSB_ERROR_TIMEOUT",
  [-8]: "LIBUSB_ERROR_OVERFLOW",
  [-9]: "LIBUSB_ERROR_PIPE",
  [-10]: "LIBUSB_ERROR_INTERRUPTED",
  [-11]: "LIBUSB_ERROR_NO_MEM",
  [-12]: "LIBUSB_ERROR_NOT_SUPPORTED",
  [-99]: "LIBUSB_ERROR_OTHER",
};

const MEANING: Record<string, string> = {
  LIBUSB_ERROR_IO: "input/output error",
  LIBUSB_ERROR_NO_DEVICE: "the device is gone (unplugged?)",
  LIBUSB_ERROR_TIMEOUT: "the device did not answer in time",
  LIBUSB_ERROR_PIPE: "the device refused the request (stall)",
  LIBUSB_ERROR_BUSY: "the device is busy",
};

/** A libusb call that failed, with libusb's error name as `libusbCode`. */
export class UsbError extends DriverError {
  constructor(
    message: string,
    readonly libusbCode: string,
  ) {
    super(message);
  }
}

type FFI = typeof import("bun:ffi");
type Pointer = import("bun:ffi").Pointer;

function bind(ffi: FFI) {
  let lib;
  try {
    lib = ffi.dlopen(LIBRARY, {
      libusb_init: { args: ["ptr"], returns: "i32" },
      libusb_get_device_list: { args: ["ptr", "ptr"], returns: "i64" },
      libusb_free_device_list: { args: ["ptr", "i32"], returns: "void" },
      libusb_get_bus_number: { args: ["ptr"], returns: "u8" },
      libusb_get_device_address: { args: ["ptr"], returns: "u8" },
      libusb_open: { args: ["ptr", "ptr"], returns: "i32" },
      libusb_close: { args: ["ptr"], returns: "void" },
      libusb_control_transfer: { args: ["ptr", "u8", "u8", "u16", "u16", "ptr", "u16", "u32"], returns: "i32" },
    });
  } catch (e) {
    // dlopen's own words, without the library name Bun repeats in front of them.
    const why = (e as Error).message.split("\n")[0]!.split(": ").slice(-2).join(": ");
    throw new UnavailableError(`libusb-1.0 is not installed on this exporter (cannot load ${LIBRARY}: ${why}): install it with 'apt-get install ${LIBUSB_PACKAGE}'`);
  }
  const out = new BigUint64Array(1);
  const status = lib.symbols.libusb_init(out);
  if (status < 0) {
    const code = ERRORS[status] ?? String(status);
    throw new UsbError(`libusb could not start (${code}); LIBUSB_DEBUG=4 in the exporter's environment makes libusb say why`, code);
  }
  return { ffi, s: lib.symbols, context: Number(out[0]) as Pointer };
}

let bound: ReturnType<typeof bind> | undefined;
function usb() {
  bound ??= bind(require("bun:ffi") as FFI);
  return bound;
}

/** Loads libusb now (throws naming the package when it is missing). */
export function requireLibusb(): void {
  usb();
}

export interface ControlSetup {
  requestType: number;
  request: number;
  value: number;
  index: number;
}

/** An open device: control transfers until close(). */
export class UsbHandle {
  private handle: Pointer | undefined;

  private constructor(
    handle: Pointer,
    readonly device: UsbDevice,
    readonly node: string,
  ) {
    this.handle = handle;
  }

  /**
   * Opens the device sysfs shows at `device.bus`/`device.devnum`. Fails with what to
   * do: permission (udev rule), gone (replugged), busy.
   */
  static open(device: UsbDevice, label: string): UsbHandle {
    const { s, ffi, context } = usb();
    const node = usbfsNode(device);
    const list = new BigUint64Array(1);
    const count = Number(s.libusb_get_device_list(context, list));
    if (count < 0) throw new UsbError(`listing USB devices failed: ${ERRORS[count] ?? count}`, ERRORS[count] ?? String(count));
    const listPtr = Number(list[0]) as Pointer;
    try {
      for (let i = 0; i < count; i++) {
        const dev = ffi.read.ptr(listPtr, i * 8) as Pointer;
        if (s.libusb_get_bus_number(dev) !== device.bus || s.libusb_get_device_address(dev) !== device.devnum) continue;
        const out = new BigUint64Array(1);
        const status = s.libusb_open(dev, out);
        if (status === 0) return new UsbHandle(Number(out[0]) as Pointer, device, node);
        const code = ERRORS[status] ?? String(status);
        if (code === "LIBUSB_ERROR_ACCESS") {
          throw new UsbError(`${node}: permission denied opening ${label} (${permissionHint(device)})`, code);
        }
        throw new UsbError(`${node}: cannot open ${label}: ${MEANING[code] ?? code}`, code);
      }
    } finally {
      s.libusb_free_device_list(listPtr, 1);
    }
    throw new UsbError(`${node}: ${label} is not there any more (unplugged, or it re-enumerated)`, "LIBUSB_ERROR_NO_DEVICE");
  }

  /** A control transfer to the device; `data` out (a Uint8Array) or the number of bytes in. */
  control(setup: ControlSetup, data: Uint8Array | number, what: string): Uint8Array {
    if (this.handle === undefined) throw new UsbError(`${what}: ${this.node} is closed`, "LIBUSB_ERROR_NO_DEVICE");
    const buffer = typeof data === "number" ? new Uint8Array(data) : data;
    const n = usb().s.libusb_control_transfer(
      this.handle, setup.requestType, setup.request, setup.value, setup.index,
      buffer.byteLength ? buffer : null, buffer.byteLength, TRANSFER_TIMEOUT_MS,
    );
    if (n < 0) {
      const code = ERRORS[n] ?? String(n);
      throw new UsbError(`${what} failed on ${this.node}: ${MEANING[code] ?? code} (${code})`, code);
    }
    return buffer.subarray(0, n);
  }

  close(): void {
    if (this.handle === undefined) return;
    usb().s.libusb_close(this.handle);
    this.handle = undefined;
  }
}

/** Opens the device, runs `use` and closes it again, whatever happens. */
export function withDevice<T>(device: UsbDevice, label: string, use: (h: UsbHandle) => T): T {
  const handle = UsbHandle.open(device, label);
  try {
    return use(handle);
  } finally {
    handle.close();
  }
}
