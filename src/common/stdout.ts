/**
 * Standard output without paying for it when unused. In Bun 1.4.5 the first use
 * of `process.stdout` builds a Node stream for fd 1 (~14 ms of CPU on a pipe or a
 * file, more than all of `jmp version` otherwise costs), while `console.log`
 * writes natively and is flushed at exit. So code that needs the stream takes it
 * from `stdout()`, which notes that it did, and the CLI waits for that stream to
 * drain before it exits only then (a pending `process.stdout` write is lost at
 * `process.exit`; `console.log`'s are not).
 */
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

let isatty: ((fd: number) => boolean) | undefined;

/**
 * Whether fd 1 or 2 is a terminal. Asked of the runtime's native tty binding (what
 * node:tty's isatty calls), or of libc's isatty through `bun:ffi` where that binding
 * is missing, rather than by building the stream only to read its `isTTY`, by
 * loading node:tty, or by fstat through node:fs or Bun.file: those cost `jmp --help`
 * 0.5-5 ms of its ~7 ms (bench/README.md). Without either (not a case jmp's
 * executables meet) the answer is "no": plain text, 100 columns.
 */
export function isTerminal(fd: 1 | 2): boolean {
  try {
    isatty ??= ttyBinding() ?? libcIsatty();
    return isatty(fd);
  } catch {
    return false;
  }
}

export function ttyBinding(): ((fd: number) => boolean) | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): { isTTY?: (fd: number) => boolean } }).binding("tty_wrap");
    return typeof binding.isTTY === "function" ? (fd) => binding.isTTY!(fd) === true : undefined;
  } catch {
    return undefined;
  }
}

export function libcIsatty(): (fd: number) => boolean {
  const { symbols } = (require("bun:ffi") as typeof import("bun:ffi")).dlopen("libc.so.6", { isatty: { args: ["i32"], returns: "i32" } });
  return (fd) => symbols.isatty(fd) === 1;
}
