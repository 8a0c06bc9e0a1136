/**
 * Reading a citty command tree as users type it: subcommands by name or alias, and
 * flags by kebab-case name, camelCase key or alias. Shared by runCli (parsing,
 * checking), the help and shell completion, so the three agree on every word.
 */
import type { ArgDef, ArgsDef, CommandDef, CommandMeta } from "citty";
import { isRepeatable } from "../common/repeatable.ts";

export type AnyCommand = CommandDef<any>;

export const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
export const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export async function resolveValue<T>(v: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined): Promise<T | undefined> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

export function aliasesOf(def: ArgDef | CommandMeta): string[] {
  const alias = (def as { alias?: string | string[] }).alias;
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

export async function argsOf(cmd: AnyCommand): Promise<ArgsDef> {
  return ((await resolveValue(cmd.args)) ?? {}) as ArgsDef;
}

const LOAD = Symbol("load");

/**
 * A subcommand known by its meta until it is entered: listing it (help, completion)
 * or matching a word against its name and aliases loads nothing; `subCommandNamed`
 * loads the command itself. Each module a command tree imports at the top is code
 * every start-up evaluates, `jmp version` included (4 ms of jmp's whole tree).
 */
export function lazyCommand(meta: CommandMeta, load: () => Promise<AnyCommand>): AnyCommand {
  return { meta, [LOAD]: load } as AnyCommand;
}

async function entered(cmd: AnyCommand): Promise<AnyCommand> {
  const load = (cmd as { [LOAD]?: () => Promise<AnyCommand> })[LOAD];
  return load ? await load() : cmd;
}

export async function subCommandsOf(cmd: AnyCommand): Promise<[string, AnyCommand][]> {
  const subs = (await resolveValue(cmd.subCommands)) ?? {};
  const out: [string, AnyCommand][] = [];
  for (const [name, sub] of Object.entries(subs)) out.push([name, (await resolveValue(sub)) as AnyCommand]);
  return out;
}

/** The subcommand called `name`, or aliased so. */
export async function subCommandNamed(cmd: AnyCommand, name: string): Promise<AnyCommand | undefined> {
  for (const [key, sub] of await subCommandsOf(cmd)) {
    if (key === name || aliasesOf((await resolveValue(sub.meta)) ?? {}).includes(name)) return entered(sub);
  }
  return undefined;
}

/** Every name of every visible subcommand, aliases included. */
export async function commandNames(cmd: AnyCommand): Promise<string[]> {
  const names: string[] = [];
  for (const [key, sub] of await subCommandsOf(cmd)) {
    const meta = (await resolveValue(sub.meta)) ?? {};
    if (!meta.hidden) names.push(key, ...aliasesOf(meta));
  }
  return names;
}

/** A positional argument is required unless it says otherwise or has a default (citty's rule). */
export function positionalRequired(def: ArgDef): boolean {
  return def.type === "positional" && def.required !== false && def.default === undefined;
}

export const isFlag = (word: string) => word.startsWith("-") && word !== "-";

export const takesValue = (def: ArgDef) => def.type === "string" || def.type === "enum";

/** The argument a flag word names (`--drivers-dir`, `--driversDir`, `-l`, `-lVALUE`, `--no-x`). */
export function flagDef(args: ArgsDef, word: string): { key: string; def: ArgDef; negated?: boolean } | undefined {
  if (word.startsWith("--")) {
    const name = word.slice(2).split("=")[0]!;
    for (const [key, def] of Object.entries(args)) {
      if (def.type === "positional") continue;
      if (key === name || kebab(key) === name || aliasesOf(def).includes(name)) return { key, def };
    }
    // citty reads --no-X as X=false for any X; some commands give it a meaning.
    const negated = name.startsWith("no-") ? flagDef(args, `--${name.slice(3)}`) : undefined;
    return negated && { ...negated, negated: true };
  }
  for (const [key, def] of Object.entries(args)) {
    if (def.type === "positional" || !aliasesOf(def).includes(word.slice(1, 2))) continue;
    // `-lVALUE` carries its value; `-aA` are two booleans, not this one.
    return word.length === 2 || takesValue(def) ? { key, def } : undefined;
  }
  return undefined;
}

/** Whether `word` is a flag of `args` that takes a value and carries none itself. */
export function wantsNext(args: ArgsDef, word: string): boolean {
  const found = isFlag(word) ? flagDef(args, word) : undefined;
  if (!found || found.negated || !takesValue(found.def)) return false;
  return word.startsWith("--") ? !word.includes("=") : word.length === 2;
}

/** Whether a flag collects every value given: marked with repeatable(). */
export function repeats(def: ArgDef): boolean {
  return isRepeatable(def);
}
