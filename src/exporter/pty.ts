/**
 * A pseudo-terminal pair, made through libc with `bun:ffi` (Bun has no pty API):
 * posix_openpt, grantpt, unlockpt and ptsname_r, all in glibc's libc.so.6. A hook
 * gets the terminal end as its stdin, stdout and stderr, so that isatty() is true
 * and programs line-buffer their output as they do for a person (upstream runs its
 * hooks in a pty for the same reason); we read the other end.
 *
 * `bun:ffi` is loaded on first use: an exporter without hooks never loads it.
 */
import { closeSync, constants, openSync } from "node:fs";
import { constants as osConstants } from "node:os";

/** From <fcntl.h>: the same on x86-64 and arm64 Linux (asm-generic). */
const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

export interface PtyPair {
  /** Ours: read what the program writes (non-blocking, close-on-exec). */
  master: number;
  /** The program's terminal, /dev/pts/N. */
  slave: number;
  path: string;
}

type Libc = ReturnType<typeof bind>;
let libc: Libc | undefined;

function bind() {
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  const { symbols } = ffi.dlopen("libc.so.6", {
    posix_openpt: { args: ["i32"], returns: "i32" },
    grantpt: { args: ["i32"], returns: "i32" },
    unlockpt: { args: ["i32"], returns: "i32" },
    ptsname_r: { args: ["i32", "ptr", "u64"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  });
  const errno = (): string => {
    const code = ffi.read.i32(symbols.__errno_location()!, 0);
    return Object.entries(osConstants.errno).find(([, n]) => n === code)?.[0] ?? `errno ${code}`;
  };
  return { ...symbols, errno };
}

/** A new pty pair; the caller closes both ends. */
export function openPty(): PtyPair {
  libc ??= bind();
  const c = libc;
  const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (master < 0) throw new Error(`cannot open a pseudo-terminal (posix_openpt: ${c.errno()}); is /dev/pts mounted?`);
  try {
    if (c.grantpt(master) !== 0) throw new Error(`grantpt: ${c.errno()}`);
    if (c.unlockpt(master) !== 0) throw new Error(`unlockpt: ${c.errno()}`);
    const name = new Uint8Array(128);
    const failed = c.ptsname_r(master, name, name.length);
    if (failed !== 0) throw new Error(`ptsname_r: error ${failed}`);
    const path = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
    // Node opens it close-on-exec: only the child it is handed to keeps it.
    const slave = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
    return { master, slave, path };
  } catch (e) {
    closeSync(master);
    throw new Error(`cannot set up a pseudo-terminal: ${(e as Error).message}`);
  }
}
