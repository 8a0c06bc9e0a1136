/**
 * Marks a string flag as repeatable. citty keeps only the last value of a flag given
 * twice; for a marked flag, `jmp`'s runCli (src/cli/run.ts) hands the command every
 * value in the order given, as a `string[]` (`[]` when the flag is absent, `[default]`
 * when it has a default): `-l a -l b`, `--selector=a --selector b` and `-la` alike.
 * The help shows "(repeatable)" after the description.
 *
 * citty's types cannot say so, so `args.x` still reads as `string` in TypeScript: read
 * a repeatable flag through a helper that takes `string | string[]` (`listArg`,
 * `keyValues`, `selectorArg` in src/cli/client-context.ts).
 *
 * @example
 * args: { tag: repeatable({ type: "string", description: "KEY=VALUE tag" }) }
 */
import type { StringArgDef } from "citty";

const REPEATABLE = Symbol("repeatable");

export function repeatable<const T extends StringArgDef>(def: T): T {
  return Object.assign({ ...def }, { [REPEATABLE]: true });
}

export function isRepeatable(def: object): boolean {
  return (def as { [REPEATABLE]?: boolean })[REPEATABLE] === true;
}
