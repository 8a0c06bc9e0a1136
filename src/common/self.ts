/** This program, as something to run again: the compiled executable, or bun and the script. */

/** True when this process is a `bun build --compile` executable. */
export function isCompiled(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/");
}

/** The command line that starts this program again, before its arguments. */
export function selfCommand(exe = process.execPath): string[] {
  return isCompiled() ? [exe] : [exe, process.argv[1]!];
}
