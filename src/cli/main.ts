/**
 * The jmp executable. Invoked as `j` (a link) or `jmp j …` it is the driver CLI of
 * the current session; otherwise the command tree below. Command modules are small
 * definitions; each imports its role inside `run`, so `--help` and `version` stay fast.
 * `__complete` (for the scripts of `jmp completion`) is answered before either tree
 * parses its flags, since the words it gets are a half-typed command line.
 */
import { rootCommand } from "./commands.ts";
import { stdout, stdoutUsed } from "../common/stdout.ts";

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  // The program's own name, without node:path (its load is a tenth of `jmp version`).
  const asJ = process.argv0.slice(process.argv0.lastIndexOf("/") + 1) === "j";
  if (argv[0] === "__complete") {
    const { complete } = await import("./completion.ts");
    const words = argv.slice(1);
    for (const c of await complete(asJ ? ["j", ...words] : words)) console.log(c);
    return 0;
  }
  if (asJ) return (await import("./j.ts")).runJ(argv);
  if (argv[0] === "j") return (await import("./j.ts")).runJ(argv.slice(1));
  const { runCli } = await import("./run.ts");
  return runCli(rootCommand, "jmp", argv);
}

if (import.meta.main) {
  const code = await main();
  // Flush what went to the stdout stream, if anything did (console.log's output is
  // flushed at exit anyway), then leave even if a connection pool keeps the loop alive.
  if (stdoutUsed()) await new Promise<void>((r) => stdout().write("", () => r()));
  process.exit(process.exitCode && code === 0 ? Number(process.exitCode) : code);
}
