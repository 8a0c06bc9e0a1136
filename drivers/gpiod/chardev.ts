/**
 * open, ioctl, read, fcntl and close on GPIO character devices, called from libc
 * through `bun:ffi` (Node's fs has no ioctl). `bun:ffi` is loaded on first use, so
 * a machine that never opens a GPIO chip never loads it; synchronously, because a
 * driver checks its line in its constructor.
 *
 * The functions are looked up in the process's global symbol scope
 * (dlsym(RTLD_DEFAULT)) rather than in libc.so.6 itself, so they resolve as a C
 * program's calls do: to an LD_PRELOAD interposer when one is loaded. umockdev is
 * one, and the tests simulate GPIO chips with it; a dlopen'ed libc's own symbols
 * would bypass it.
 *
 * Linux only; the flag and errno numbers are asm-generic, the same on x86-64 and
 * arm64 (checked in uapi.test.ts).
 */
import { constants as osConstants } from "node:os";

/** From <fcntl.h>; exported for uapi.test.ts, which checks them against the headers. */
export const FCNTL = { O_RDWR: 0o2, O_CLOEXEC: 0o2000000, O_NONBLOCK: 0o4000, F_GETFL: 3, F_SETFL: 4 } as const;
const { O_RDWR, O_CLOEXEC, O_NONBLOCK, F_GETFL, F_SETFL } = FCNTL;

/** A failed call, with the errno's name as `code` like Node's own errors. */
export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly code: string,
  ) {
    super(`${call} failed: ${code}`);
  }
}

type Libc = ReturnType<typeof bind>;
let libc: Libc | undefined;

function bind(ffi: typeof import("bun:ffi")) {
  const lookup = (() => {
    // dlsym is in libc.so.6 from glibc 2.34; in libdl.so.2 before that.
    for (const lib of ["libc.so.6", "libdl.so.2"]) {
      try {
        return ffi.dlopen(lib, { dlsym: { args: ["ptr", "cstring"], returns: "ptr" } }).symbols.dlsym;
      } catch {
        // try the next
      }
    }
    throw new Error("cannot load dlsym from libc.so.6 or libdl.so.2");
  })();
  const fn = <const A extends import("bun:ffi").FFITypeOrString[], const R extends import("bun:ffi").FFITypeOrString>(
    name: string,
    args: A,
    returns: R,
  ) => {
    const ptr = lookup(null, Buffer.from(`${name}\0`));
    if (!ptr) throw new Error(`libc has no ${name}`);
    return ffi.CFunction({ ptr, args, returns });
  };
  const errnoLocation = ffi.dlopen("libc.so.6", { __errno_location: { args: [], returns: "ptr" } }).symbols.__errno_location;
  return {
    // open, ioctl and fcntl are variadic; their extra argument is passed in a
    // register like any other on x86-64 and arm64 Linux.
    open: fn("open", ["cstring", "i32"], "i32"),
    ioctl: fn("ioctl", ["i32", "u64", "ptr"], "i32"),
    read: fn("read", ["i32", "ptr", "u64"], "i64"),
    fcntl: fn("fcntl", ["i32", "i32", "i64"], "i32"),
    close: fn("close", ["i32"], "i32"),
    errno(): string {
      const code = ffi.read.i32(errnoLocation()!, 0);
      return Object.entries(osConstants.errno).find(([, n]) => n === code)?.[0] ?? `errno ${code}`;
    },
  };
}

let device: ReturnType<typeof makeDevice> | undefined;

/**
 * The device functions, bound on first use. Each call is one short system call
 * on a character device, so they are synchronous.
 */
export function gpioDevice(): GpioDevice {
  libc ??= bind(require("bun:ffi") as typeof import("bun:ffi"));
  device ??= makeDevice(libc);
  return device;
}

function makeDevice(c: Libc) {
  return {
    /** Opens a GPIO chip for ioctls; throws SyscallError (ENOENT, EACCES, ...). */
    open(path: string): number {
      const fd = c.open(Buffer.from(`${path}\0`), O_RDWR | O_CLOEXEC);
      if (fd < 0) throw new SyscallError(`open ${path}`, c.errno());
      return fd;
    },
    ioctl(fd: number, request: number, arg: Uint8Array, what: string): void {
      if (c.ioctl(fd, request, arg) !== 0) throw new SyscallError(what, c.errno());
    },
    /** One read; undefined when nothing is waiting on a non-blocking fd. */
    read(fd: number, buf: Uint8Array): number | undefined {
      const n = Number(c.read(fd, buf, buf.byteLength));
      if (n >= 0) return n;
      const code = c.errno();
      if (code === "EAGAIN") return undefined;
      throw new SyscallError("read", code);
    },
    setNonBlocking(fd: number): void {
      const flags = c.fcntl(fd, F_GETFL, 0);
      if (flags < 0 || c.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw new SyscallError("fcntl", c.errno());
    },
    close(fd: number): void {
      c.close(fd);
    },
  };
}

export type GpioDevice = ReturnType<typeof makeDevice>;
