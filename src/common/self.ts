/** This program, as something to run again: the compiled executable, or bun and the script. */
import { chmodSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makePrivateDir } from "./private-dir.ts";

/** True when this process is a `bun build --compile` executable. */
export function isCompiled(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/");
}

/** The command line that starts this program again, before its arguments. */
export function selfCommand(exe = process.execPath): string[] {
  return isCompiled() ? [exe] : [exe, process.argv[1]!];
}

/**
 * A new private directory holding a `j` that runs this very program as the driver
 * CLI, to put first on the PATH of what we start (a shell, a hook): `j` is there even
 * when only `jmp` is installed. The caller removes it.
 */
export function makeJCommandDir(): string {
  const dir = makePrivateDir("jmp-bin-");
  if (isCompiled()) {
    symlinkSync(process.execPath, join(dir, "j"));
  } else {
    // Running from source (bun run src/cli/main.ts): a script that does the same.
    const script = `#!/bin/sh\nexec ${selfCommand().map((a) => `"${a}"`).join(" ")} j "$@"\n`;
    writeFileSync(join(dir, "j"), script);
    chmodSync(join(dir, "j"), 0o755);
  }
  return dir;
}
