/**
 * Terminal settings through libc, called with `bun:ffi` (the `serialport` package
 * aborts under Bun). `bun:ffi` is loaded on first use, so a machine that never opens
 * a serial port never loads it.
 *
 * Linux only. The numbers below were checked against the x86-64 and arm64 glibc 2.36
 * headers (Debian's libc6-dev and libc6-dev-arm64-cross): both use the generic
 * struct termios (60 bytes: four u32 flags, c_line, c_cc[32], ispeed, ospeed),
 * asm-generic ioctl numbers and the same B* speed codes.
 */
import { constants as osConstants } from "node:os";
import { InvalidArgumentError, NotImplementedDriverError } from "@jumpstarter/driver";

const TERMIOS_SIZE = 60;
const C_CFLAG = 8;
const HUPCL = 0o2000;
const CBAUD = 0o10017;
const TCSANOW = 0;

// struct termios2 (the kernel's, for speeds without a B* code): c_cc has 19 entries,
// so the speeds sit at 36 and 40 in a 44-byte struct.
const TERMIOS2_SIZE = 44;
const T2_ISPEED = 36;
const T2_OSPEED = 40;
const BOTHER = 0o10000;
const TCGETS2 = 0x802c542a;
const TCSETS2 = 0x402c542b;

const TIOCMBIS = 0x5416;
const TIOCMBIC = 0x5417;
export const TIOCM_DTR = 0x002;
export const TIOCM_RTS = 0x004;

/** The speeds with a B* code; others go through termios2 (BOTHER). */
const SPEED_CODES = new Map<number, number>([
  [50, 1], [75, 2], [110, 3], [134, 4], [150, 5], [200, 6], [300, 7], [600, 8], [1200, 9], [1800, 10],
  [2400, 11], [4800, 12], [9600, 13], [19200, 14], [38400, 15], [57600, 0o10001], [115200, 0o10002],
  [230400, 0o10003], [460800, 0o10004], [500000, 0o10005], [576000, 0o10006], [921600, 0o10007],
  [1000000, 0o10010], [1152000, 0o10011], [1500000, 0o10012], [2000000, 0o10013], [2500000, 0o10014],
  [3000000, 0o10015], [3500000, 0o10016], [4000000, 0o10017],
]);

type Libc = Awaited<ReturnType<typeof openLibc>>;
let libc: Promise<Libc> | undefined;

async function openLibc() {
  const ffi = await import("bun:ffi");
  const { symbols } = ffi.dlopen("libc.so.6", {
    tcgetattr: { args: ["i32", "ptr"], returns: "i32" },
    tcsetattr: { args: ["i32", "i32", "ptr"], returns: "i32" },
    cfmakeraw: { args: ["ptr"], returns: "void" },
    cfsetspeed: { args: ["ptr", "u32"], returns: "i32" },
    // ioctl is variadic; a pointer as the third argument is passed the same way on
    // x86-64 and arm64 Linux.
    ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  });
  const errnoName = (): string => {
    const code = ffi.read.i32(symbols.__errno_location()!, 0);
    const name = Object.entries(osConstants.errno).find(([, n]) => n === code)?.[0];
    return name ?? `errno ${code}`;
  };
  return { ...symbols, errnoName };
}

function loadLibc(): Promise<Libc> {
  libc ??= openLibc();
  return libc;
}

/** A failed libc call, with the errno name as `code` like Node's own errors. */
function failure(what: string, path: string, code: string): Error {
  return Object.assign(new Error(`${what} on ${path} failed: ${code}`), { code });
}

export interface LineSettings {
  baudrate: number;
  /** Keep DTR up when the port is closed (clear HUPCL), so boards that reset on DTR do not. */
  disableHupcl: boolean;
}

/** Raw mode (8N1, no echo, no line editing, no flow control) at the given speed. */
export async function configureRaw(fd: number, path: string, settings: LineSettings): Promise<void> {
  const c = await loadLibc();
  const t = new Uint8Array(TERMIOS_SIZE);
  if (c.tcgetattr(fd, t) !== 0) {
    const code = c.errnoName();
    if (code === "ENOTTY") throw new InvalidArgumentError(`${path} is not a serial device (not a terminal: ${code})`);
    throw failure("tcgetattr", path, code);
  }
  c.cfmakeraw(t);
  const speedCode = SPEED_CODES.get(settings.baudrate);
  if (speedCode !== undefined && c.cfsetspeed(t, speedCode) !== 0) throw failure("cfsetspeed", path, c.errnoName());
  if (settings.disableHupcl) {
    const view = new DataView(t.buffer);
    view.setUint32(C_CFLAG, view.getUint32(C_CFLAG, true) & ~HUPCL, true);
  }
  if (c.tcsetattr(fd, TCSANOW, t) !== 0) throw failure("tcsetattr", path, c.errnoName());
  if (speedCode === undefined) await setCustomSpeed(c, fd, path, settings.baudrate);
}

async function setCustomSpeed(c: Libc, fd: number, path: string, baudrate: number): Promise<void> {
  const t = new Uint8Array(TERMIOS2_SIZE);
  if (c.ioctl(fd, TCGETS2, t) !== 0) throw failure(`reading termios2 for baudrate ${baudrate}`, path, c.errnoName());
  const view = new DataView(t.buffer);
  view.setUint32(C_CFLAG, (view.getUint32(C_CFLAG, true) & ~CBAUD) | BOTHER, true);
  view.setUint32(T2_ISPEED, baudrate, true);
  view.setUint32(T2_OSPEED, baudrate, true);
  if (c.ioctl(fd, TCSETS2, t) !== 0) throw failure(`setting baudrate ${baudrate}`, path, c.errnoName());
}

/** The output speed in bits per second, as the kernel has it (what tests check). */
export async function outputSpeed(fd: number, path: string): Promise<number> {
  const c = await loadLibc();
  const t = new Uint8Array(TERMIOS2_SIZE);
  if (c.ioctl(fd, TCGETS2, t) !== 0) throw failure("reading termios2", path, c.errnoName());
  return new DataView(t.buffer).getUint32(T2_OSPEED, true);
}

/** Raises or lowers a modem control line (TIOCM_DTR, TIOCM_RTS). */
export async function setModemLine(fd: number, path: string, line: number, on: boolean): Promise<void> {
  const c = await loadLibc();
  const bits = new Int32Array([line]);
  if (c.ioctl(fd, on ? TIOCMBIS : TIOCMBIC, bits) !== 0) {
    const code = c.errnoName();
    const what = `setting ${line === TIOCM_DTR ? "DTR" : "RTS"} ${on ? "on" : "off"}`;
    if (code === "ENOTTY" || code === "EINVAL") {
      throw new NotImplementedDriverError(`${what} failed: ${path} has no modem control lines (${code}; a pty has none)`);
    }
    throw failure(what, path, code);
  }
}
