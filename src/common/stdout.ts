/**
 * Standard output without paying for it when unused. In Bun 1.4.5 the first use
 * of `process.stdout` builds a Node stream for fd 1 (~14 ms of CPU on a pipe or a
 * file, more than all of `jmp version` otherwise costs), while `console.log`
 * writes natively and is flushed at exit. So code that needs the stream takes it
 * from `stdout()`, which notes that it did, and the CLI waits for that stream to
 * drain before it exits only then (a pending `process.stdout` write is lost at
 * `process.exit`; `console.log`'s are not).
 */
import { fstatSync } from "node:fs";

let used = false;

/** process.stdout, noted as used (see above). Every writer to stdout takes it from here. */
export function stdout(): NodeJS.WriteStream {
  used = true;
  return process.stdout;
}

/** Whether anything took the stdout stream, which then may hold unwritten output. */
export function stdoutUsed(): boolean {
  return used;
}

/**
 * Linux character devices that are terminals, by major number: 4 (virtual
 * consoles, serial ttys), 5 (/dev/tty, /dev/console, /dev/ptmx) and 136–143
 * (pseudo-terminals, /dev/pts/N). /dev/null is one too (major 1), hence the check.
 */
const TERMINAL_MAJORS = new Set([4, 5, 136, 137, 138, 139, 140, 141, 142, 143]);

/**
 * Whether fd 1 or 2 is a terminal, answered by fstat instead of by building the
 * stream only to read its `isTTY`.
 */
export function isTerminal(fd: 1 | 2): boolean {
  try {
    const s = fstatSync(fd);
    return s.isCharacterDevice() && TERMINAL_MAJORS.has(Math.floor(s.rdev / 256) & 0xfff);
  } catch {
    return false;
  }
}
