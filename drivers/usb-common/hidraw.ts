/**
 * HID reports through the kernel's hidraw nodes (/dev/hidrawN), as hidapi's
 * hidraw backend sends them: one write() is one output report, its first byte the
 * report ID (0 for devices that number none); one read() is one input report. The
 * kernel's usbhid driver stays bound, so other tools keep working, and access is a
 * udev rule on the hidraw node.
 *
 * Opened per exchange (open, write, read the answer, close): nothing is held
 * between calls, and a fresh open has no stale input reports queued. Synchronous,
 * as libusb's transfers are, so a driver can also switch at the start of a session
 * (in its constructor); a read waits at most its timeout for the device's answer.
 */
import { DeadlineExceededError, DriverError, UnavailableError } from "@jumpstarter/driver";
import { closeFd, O, openPath, readFd, SyscallError, waitReadable, writeFd } from "../native/libc.ts";
import { describeDevice, hidrawNodes, type UsbDevice } from "./sysfs.ts";
import { permissionHint } from "./udev.ts";

/** The device's hidraw node (of its first HID interface, unless told); throws saying why there is none. */
export function hidrawNodeOf(device: UsbDevice, label: string, iface?: number): string {
  const nodes = hidrawNodes(device).filter((n) => iface === undefined || n.iface === iface);
  if (nodes.length === 0) {
    throw new UnavailableError(`${label} at ${describeDevice(device)} has no hidraw node: is the kernel's usbhid driver bound to it (modprobe usbhid)?`);
  }
  return nodes[0]!.node;
}

const MAX_REPORT = 4096;

export class Hidraw {
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly node: string,
    readonly label: string,
  ) {}

  /** Opens the node; throws what to do when it cannot (permission: the udev rule). */
  static open(node: string, device: UsbDevice, label: string): Hidraw {
    let fd: number;
    try {
      fd = openPath(node, O.RDWR | O.NONBLOCK);
    } catch (e) {
      const code = (e as SyscallError).code;
      if (code === "EACCES" || code === "EPERM") throw new DriverError(`${node}: permission denied opening ${label} (${permissionHint(device, "hidraw")})`);
      if (code === "ENOENT" || code === "ENODEV" || code === "ENXIO") throw new UnavailableError(`${node}: ${label} is not there any more (unplugged?)`);
      throw new UnavailableError(`${node}: cannot open ${label}: ${(e as Error).message}`);
    }
    return new Hidraw(fd, node, label);
  }

  /** Checks that the node can be opened, and closes it again. */
  static check(node: string, device: UsbDevice, label: string): void {
    Hidraw.open(node, device, label).close();
  }

  /** One output report: `reportId` then `data`. */
  write(reportId: number, data: Uint8Array, what: string): void {
    const report = new Uint8Array(1 + data.byteLength);
    report[0] = reportId;
    report.set(data, 1);
    try {
      writeFd(this.fd, report, `writing ${what} to ${this.label} (${this.node})`);
    } catch (e) {
      throw new UnavailableError((e as Error).message);
    }
  }

  /** The next input report, waiting up to `timeoutMs`; undefined if none came. */
  read(timeoutMs: number, what: string): Uint8Array | undefined {
    const where = `reading the answer to ${what} from ${this.label} (${this.node})`;
    const deadline = performance.now() + timeoutMs;
    try {
      const buf = new Uint8Array(MAX_REPORT);
      for (;;) {
        const n = readFd(this.fd, buf, where);
        if (n !== undefined) return buf.slice(0, n);
        if (!waitReadable(this.fd, Math.max(0, deadline - performance.now()), where)) return undefined;
      }
    } catch (e) {
      throw new UnavailableError((e as Error).message);
    }
  }

  /** The next input report; DeadlineExceededError after `timeoutMs`. */
  answer(timeoutMs: number, what: string): Uint8Array {
    const report = this.read(timeoutMs, what);
    if (!report) throw new DeadlineExceededError(`${this.label} (${this.node}) did not answer ${what} within ${timeoutMs / 1000} s`);
    return report;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

/** Opens, runs `use`, closes, whatever happens. */
export function withHidraw<T>(node: string, device: UsbDevice, label: string, use: (h: Hidraw) => T): T {
  const h = Hidraw.open(node, device, label);
  try {
    return use(h);
  } finally {
    h.close();
  }
}
