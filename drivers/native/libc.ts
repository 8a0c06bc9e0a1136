/**
 * The libc calls drivers make on device nodes and sysfs (open, read, write, ioctl,
 * fcntl, poll, lseek, close, opendir/readdir, readlink, isatty), through `bun:ffi`,
 * loaded on first use and synchronously (a driver checks its device in its
 * constructor). Each is one short system call on a device node or a sysfs file, so
 * they are synchronous; a machine that never opens such a device never loads
 * `bun:ffi`. Used by the GPIO drivers (character device ioctls: Node's fs has no
 * ioctl) and the USB drivers (sysfs, hidraw, ttys, disks).
 *
 * Why not node:fs: Bun's fs makes its system calls directly, not through libc, so
 * an LD_PRELOAD interposer never sees them. umockdev is one (the tests simulate
 * GPIO chips and USB devices, sysfs included, with it), and libusb, which the USB
 * drivers use, goes through libc and so sees umockdev's /sys and /dev. Both must see
 * one tree. For the same reason the functions are looked up in the process's global
 * symbol scope (dlsym(RTLD_DEFAULT)), as a C program's calls resolve, not in a
 * dlopen'ed libc.so.6 whose own symbols would bypass the interposer.
 *
 * Linux only; the flag and errno numbers, struct dirent64 and struct pollfd are the
 * same on x86-64 and arm64 (libc.test.ts checks them against the headers).
 */
import { constants as osConstants } from "node:os";

/** From <fcntl.h>. */
export const O = { RDONLY: 0, WRONLY: 1, RDWR: 2, NOCTTY: 0o400, NONBLOCK: 0o4000, CLOEXEC: 0o2000000, EXCL: 0o200 } as const;
/** fcntl commands, from <fcntl.h>. */
export const F = { GETFL: 3, SETFL: 4 } as const;
export const SEEK_END = 2;
/** struct dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), then d_name. */
export const DIRENT = { TYPE_OFFSET: 18, NAME_OFFSET: 19, DT_DIR: 4, DT_LNK: 10 } as const;

/** A failed call, with the errno's name as `code` like Node's own errors. */
export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly code: string,
  ) {
    super(`${call}: ${describeErrno(code)}`);
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EBUSY: "device or resource busy",
  ENODEV: "no such device",
  ENXIO: "no such device or address",
  EIO: "input/output error",
  ENOMEDIUM: "no medium found",
  EAGAIN: "resource temporarily unavailable",
  ENOTDIR: "not a directory",
};

export function describeErrno(code: string): string {
  return ERRNO_TEXT[code] ? `${ERRNO_TEXT[code]} (${code})` : code;
}

type FFI = typeof import("bun:ffi");
let bound: ReturnType<typeof bind> | undefined;

function bind(ffi: FFI) {
  const dlsym = (() => {
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
    const ptr = dlsym(null, Buffer.from(`${name}\0`));
    if (!ptr) throw new Error(`libc has no ${name}`);
    return ffi.CFunction({ ptr, args, returns });
  };
  const errnoLocation = ffi.dlopen("libc.so.6", { __errno_location: { args: [], returns: "ptr" } }).symbols.__errno_location;
  return {
    ffi,
    // open, ioctl and fcntl are variadic; their extra argument is passed in a register
    // like any other on x86-64 and arm64 Linux.
    open: fn("open", ["cstring", "i32", "u32"], "i32"),
    ioctl: fn("ioctl", ["i32", "u64", "ptr"], "i32"),
    fcntl: fn("fcntl", ["i32", "i32", "i64"], "i32"),
    close: fn("close", ["i32"], "i32"),
    read: fn("read", ["i32", "ptr", "u64"], "i64"),
    write: fn("write", ["i32", "ptr", "u64"], "i64"),
    lseek: fn("lseek", ["i32", "i64", "i32"], "i64"),
    opendir: fn("opendir", ["cstring"], "ptr"),
    readdir: fn("readdir64", ["ptr"], "ptr"),
    closedir: fn("closedir", ["ptr"], "i32"),
    readlink: fn("readlink", ["cstring", "ptr", "u64"], "i64"),
    poll: fn("poll", ["ptr", "u64", "i32"], "i32"),
    isatty: fn("isatty", ["i32"], "i32"),
    errno(): string {
      const code = ffi.read.i32(errnoLocation()!, 0);
      return Object.entries(osConstants.errno).find(([, n]) => n === code)?.[0] ?? `errno ${code}`;
    },
  };
}

function c() {
  bound ??= bind(require("bun:ffi") as FFI);
  return bound;
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

/** Opens a file or device node; throws SyscallError (ENOENT, EACCES, ...). */
export function openPath(path: string, flags: number): number {
  const fd = c().open(cstr(path), flags | O.CLOEXEC, 0);
  if (fd < 0) throw new SyscallError(`open ${path}`, c().errno());
  return fd;
}

export function closeFd(fd: number): void {
  c().close(fd);
}

/** One read; undefined when nothing is waiting on a non-blocking fd. */
export function readFd(fd: number, buf: Uint8Array, what: string): number | undefined {
  const n = Number(c().read(fd, buf, buf.byteLength));
  if (n >= 0) return n;
  const code = c().errno();
  if (code === "EAGAIN") return undefined;
  throw new SyscallError(what, code);
}

/** Writes all of `data` (one write: a HID report must go in one piece). */
export function writeFd(fd: number, data: Uint8Array, what: string): void {
  const n = Number(c().write(fd, data, data.byteLength));
  if (n < 0) throw new SyscallError(what, c().errno());
  if (n !== data.byteLength) throw new SyscallError(`${what} (wrote ${n} of ${data.byteLength} bytes)`, "EIO");
}

/**
 * Waits until `fd` has something to read, up to `timeoutMs`; false on timeout. Blocks
 * the thread: for the answer of a device to a command just sent, never for long.
 */
export function waitReadable(fd: number, timeoutMs: number, what: string): boolean {
  // struct pollfd: int fd, short events, short revents; POLLIN is 1.
  const pfd = new Int32Array(2);
  pfd[0] = fd;
  pfd[1] = 1;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = Math.max(0, Math.ceil(deadline - performance.now()));
    const n = c().poll(pfd, 1, left);
    if (n > 0) return true;
    if (n === 0) return false;
    const code = c().errno();
    if (code !== "EINTR") throw new SyscallError(what, code);
  }
}

/** An ioctl whose argument is a buffer the kernel reads or fills; throws SyscallError (`what` names it). */
export function ioctl(fd: number, request: number, arg: Uint8Array, what: string): void {
  if (c().ioctl(fd, request, arg) !== 0) throw new SyscallError(what, c().errno());
}

/** Makes reads of `fd` return at once (readFd: undefined) when nothing is waiting. */
export function setNonBlocking(fd: number): void {
  const flags = c().fcntl(fd, F.GETFL, 0);
  if (flags < 0 || c().fcntl(fd, F.SETFL, flags | O.NONBLOCK) < 0) throw new SyscallError("fcntl", c().errno());
}

/** The size of an open file or block device (lseek to its end). */
export function sizeOfFd(fd: number, what: string): number {
  const n = Number(c().lseek(fd, 0, SEEK_END));
  if (n < 0) throw new SyscallError(what, c().errno());
  return n;
}

/** A small file's text (a sysfs attribute), trimmed; undefined if it does not exist or cannot be read. */
export function readText(path: string): string | undefined {
  let fd: number;
  try {
    fd = openPath(path, O.RDONLY);
  } catch {
    return undefined;
  }
  try {
    const chunks: Buffer[] = [];
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = readFd(fd, buf, `read ${path}`);
      if (!n) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString("utf8").trim();
  } catch {
    return undefined;
  } finally {
    closeFd(fd);
  }
}

export interface DirEntry {
  name: string;
  /** A directory itself, not a symlink to one (sysfs is full of links back up the tree). */
  dir: boolean;
  link: boolean;
}

/** The entries of a directory (without . and ..), sorted by name; [] if it does not exist. */
export function listDir(path: string): DirEntry[] {
  const lib = c();
  const dir = lib.opendir(cstr(path));
  if (!dir) return [];
  const entries: DirEntry[] = [];
  try {
    for (;;) {
      const entry = lib.readdir(dir);
      if (!entry) break;
      const name = new lib.ffi.CString(entry, DIRENT.NAME_OFFSET).toString();
      const type = lib.ffi.read.u8(entry, DIRENT.TYPE_OFFSET);
      if (name !== "." && name !== "..") entries.push({ name, dir: type === DIRENT.DT_DIR, link: type === DIRENT.DT_LNK });
    }
  } finally {
    lib.closedir(dir);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function isTerminal(fd: number): boolean {
  return c().isatty(fd) === 1;
}

/** A symlink's target, as stored; undefined if `path` is not a symlink. */
export function readLink(path: string): string | undefined {
  const buf = new Uint8Array(4096);
  const n = Number(c().readlink(cstr(path), buf, buf.byteLength));
  if (n < 0) return undefined;
  return Buffer.from(buf.subarray(0, n)).toString("utf8");
}
