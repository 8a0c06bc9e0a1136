/**
 * `defineCommand` for jmp's command trees and driver client CLIs: the identity,
 * typed with citty's types. citty's own is the identity too, but importing it loads
 * citty, which loads node:util (~2 ms of every start-up, `jmp version` included);
 * runCli (src/cli/run.ts) parses the words itself and runs the command without it.
 * A driver written against citty's `defineCommand` works the same.
 */
import type { ArgsDef, CommandDef } from "citty";

export type { ArgsDef, CommandDef };

export function defineCommand<const T extends ArgsDef = ArgsDef>(def: CommandDef<T>): CommandDef<T> {
  return def;
}
