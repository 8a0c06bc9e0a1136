/**
 * Running a citty command tree the way our users expect, for `jmp` and `j` alike:
 * `--help` anywhere before `--`, global `--log-level`/`--log-format`, every value of
 * a repeatable flag (see src/common/repeatable.ts), unknown commands and flags
 * rejected with a hint, errors printed as one line (a stack only at debug level).
 *
 * Exit codes, one rule for every command of `jmp` and `j`:
 *   0  done; `--help` too
 *   1  the command ran and failed: a driver's error, a refusing or unreachable peer, …
 *   2  a usage error, found here or by the command checking its input: an unknown
 *      command or flag, a flag without its value, a missing argument or one too many,
 *      an invalid value (from jmp, or from a `j` driver client before it calls the
 *      exporter), a broken config file; and a command that needs a subcommand and
 *      got none, the bare `jmp` and `j` included, which print their help on stderr
 *   N  a command's own code (`jmp shell -- CMD`, `j shell METHOD`)
 */
import type { ArgDef, ArgsDef, CommandContext } from "citty";
import { ConfigError, UserError } from "../common/errors.ts";
import { configureLogging, logLevel, useColor } from "../common/log.ts";
import {
  type AnyCommand, aliasesOf, argsOf, camel, commandNames, flagDef, isFlag, kebab, positionalRequired, repeats, resolveValue, subCommandNamed, takesValue,
  wantsNext,
} from "./tree.ts";
import { renderHelp } from "./usage.ts";
import { isTerminal, stdout } from "../common/stdout.ts";

let passthroughArgs: string[] = [];

/** What followed `--` on the command line (`jmp shell -- make test`). */
export function passthrough(): string[] {
  return passthroughArgs;
}

interface Resolved {
  chain: { name: string; cmd: AnyCommand }[];
  leaf: AnyCommand;
  /** The leaf's argument definitions. */
  args: ArgsDef;
  /** The words without the command names: what the leaf parses. */
  words: string[];
}

async function resolvePath(root: AnyCommand, rootName: string, argv: string[]): Promise<Resolved> {
  const chain = [{ name: rootName, cmd: root }];
  let cmd = root;
  let args = await argsOf(root);
  const words: string[] = [];
  let descending = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (isFlag(a)) {
      words.push(a);
      if (wantsNext(args, a) && i + 1 < argv.length) words.push(argv[++i]!);
      continue;
    }
    // A command's first other word is its subcommand, or the start of its arguments.
    const sub = descending ? await subCommandNamed(cmd, a) : undefined;
    if (!sub) {
      descending = false;
      words.push(a);
      continue;
    }
    cmd = sub;
    args = await argsOf(sub);
    chain.push({ name: a, cmd: sub });
  }
  return { chain, leaf: cmd, args, words };
}

interface Parsed {
  help: boolean;
  positionals: string[];
  /** Values given to each flag that takes one, in order. */
  values: Map<string, string[]>;
  /** Booleans set on the command line (`--no-x` and `--x=false` set false), and any flag negated with `--no-`. */
  switches: Map<string, boolean>;
  given: Set<string>;
  unknown: string[];
  /** Flags given without their value. */
  bare: string[];
}

/** The leaf's words sorted out with its definitions, without judging them yet. */
function parseWords(args: ArgsDef, words: string[]): Parsed {
  const p: Parsed = { help: false, positionals: [], values: new Map(), switches: new Map(), given: new Set(), unknown: [], bare: [] };
  const ownHelp = "help" in args || Object.values(args).some((d) => aliasesOf(d).includes("h"));
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!isFlag(w)) {
      p.positionals.push(w);
      continue;
    }
    if (!ownHelp && (w === "--help" || w === "-h")) {
      p.help = true;
      continue;
    }
    const found = flagDef(args, w);
    if (!found) {
      // Bundled short booleans (-aA) are fine when every letter is one.
      const letters = /^-[A-Za-z]{2,}$/.test(w) ? [...w.slice(1)].map((c) => flagDef(args, `-${c}`)) : [];
      if (letters.length && letters.every((l) => l && l.def.type === "boolean")) {
        for (const l of letters) {
          p.given.add(l!.key);
          p.switches.set(l!.key, true);
        }
      } else p.unknown.push(w);
      continue;
    }
    p.given.add(found.key);
    if (found.negated) {
      p.switches.set(found.key, false);
      continue;
    }
    // `--name=VALUE` carries its value.
    const inline = w.startsWith("--") && w.includes("=") ? w.slice(w.indexOf("=") + 1) : undefined;
    if (!takesValue(found.def)) {
      // citty's reading, kept for drivers' CLIs: `--x=false` is false, `--x=anything` true.
      p.switches.set(found.key, inline !== "false");
      continue;
    }
    let value: string | undefined;
    if (inline !== undefined) value = inline;
    else if (!w.startsWith("--") && w.length > 2) value = w.slice(2);
    else {
      const next = words[i + 1];
      // `--duration --tag x` lacks a duration; it does not mean the duration "--tag".
      if (next === undefined || (isFlag(next) && flagDef(args, next))) {
        p.bare.push(w);
        continue;
      }
      value = next;
      i++;
    }
    p.values.set(found.key, [...(p.values.get(found.key) ?? []), value]);
  }
  return p;
}

/** The candidate a mistyped word most likely meant: a completion of it, or one or two letters off. */
function nearest(word: string, candidates: string[]): string | undefined {
  const limit = word.length <= 3 ? 1 : 2;
  let best: { name: string; d: number } | undefined;
  for (const c of candidates) {
    const d = c.startsWith(word) ? 0.5 : distance(c, word);
    if (d <= limit && (!best || d < best.d)) best = { name: c, d };
  }
  return best?.name;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length]!;
}

function flagNames(args: ArgsDef): string[] {
  return Object.entries(args).filter(([, d]) => d.type !== "positional").flatMap(([k, d]) => [kebab(k), ...aliasesOf(d).filter((a) => a.length > 1)]);
}

function describeFlag(def: ArgDef): string {
  return def.description ? ` (${def.description})` : "";
}

/** Everything wrong with the words that a user can fix by retyping them: a UserError with exit code 2. */
async function checkUsage(r: Resolved, p: Parsed): Promise<void> {
  const where = r.chain.map((c) => c.name).join(" ");
  const see = `see '${where} --help'`;
  const subs = await commandNames(r.leaf);
  const positionalDefs = Object.entries(r.args).filter(([, d]) => d.type === "positional");
  if (subs.length && !positionalDefs.length && p.positionals.length) {
    const word = p.positionals[0]!;
    const near = nearest(word, subs);
    throw new UserError(`unknown command '${word}' for '${where}'${near ? ` (did you mean '${near}'?)` : ""}; ${see}`, 2);
  }
  if (!r.leaf.run) throw new UserError(`'${where}' offers no commands`, 2);
  const [unknown] = p.unknown;
  if (unknown) {
    const name = unknown.split("=")[0]!;
    const near = nearest(name.replace(/^-{1,2}/, ""), flagNames(r.args));
    throw new UserError(`unknown option '${name}' for '${where}'${near ? ` (did you mean --${near}?)` : ""}; ${see}`, 2);
  }
  const [bare] = p.bare;
  if (bare) throw new UserError(`'${bare}' needs a value${describeFlag(flagDef(r.args, bare)!.def)}; ${see}`, 2);
  if (!positionalDefs.length && p.positionals.length) throw new UserError(`'${where}' takes no argument '${p.positionals[0]}'; ${see}`, 2);
  const missing = positionalDefs.find(([, d], i) => positionalRequired(d) && i >= p.positionals.length);
  if (missing) throw new UserError(`'${where}' needs ${missing[0].toUpperCase()}${describeFlag(missing[1])}; ${see}`, 2);
  for (const [key, def] of Object.entries(r.args)) {
    if (def.type !== "positional" && def.required && def.default === undefined && !p.given.has(key)) {
      throw new UserError(`'${where}' needs --${kebab(key)}${describeFlag(def)}; ${see}`, 2);
    }
  }
}

/**
 * The leaf's `args`, from the words parsed above, as citty would hand them: each
 * under its key, kebab-case and camelCase names and aliases; positionals by name
 * and all in `_` (with what follows `--`); a default where a flag is absent; the
 * last value of a flag given twice, and every value of a repeatable one (`[]` when
 * absent, `[default]` with a default). Built here rather than by citty's
 * runCommand, whose parsing loads node:util at every start-up; checkUsage has
 * already refused what is wrong.
 */
function argsFor(r: Resolved, p: Parsed, rawArgs: string[]): Record<string, unknown> {
  // What follows `--` counts among the positionals too, as in citty.
  const dash = rawArgs.indexOf("--");
  const positionals = [...p.positionals, ...(dash === -1 ? [] : rawArgs.slice(dash + 1))];
  const out: Record<string, unknown> = { _: [...positionals] };
  for (const [key, def] of Object.entries(r.args)) {
    let value: unknown;
    if (def.type === "positional") value = positionals.shift() ?? def.default;
    else if (p.switches.has(key)) value = p.switches.get(key);
    else if (takesValue(def) && repeats(def)) value = p.values.get(key) ?? (def.default === undefined ? [] : [String(def.default)]);
    else if (takesValue(def)) value = p.values.get(key)?.at(-1) ?? def.default;
    else value = def.default;
    if (def.type === "enum" && value !== undefined && def.options?.length && !def.options.includes(value as string)) {
      const where = r.chain.map((c) => c.name).join(" ");
      throw new UserError(`'--${kebab(key)}' must be one of ${def.options.join(", ")}: got '${value}'; see '${where} --help'`, 2);
    }
    for (const name of new Set([key, kebab(key), camel(key), ...aliasesOf(def)])) out[name] = value;
  }
  return out;
}

/** Runs the leaf with its setup and cleanup, as citty's runCommand does. */
async function runLeaf(r: Resolved, p: Parsed, rawArgs: string[]): Promise<void> {
  const cmd = r.leaf;
  const context = { rawArgs, args: argsFor(r, p, rawArgs), cmd } as unknown as CommandContext<ArgsDef>;
  try {
    await cmd.setup?.(context);
    await cmd.run!(context);
  } finally {
    await cmd.cleanup?.(context);
  }
}

/** Pulls `--log-level X` and `--log-format X` out of the arguments, anywhere. */
function takeGlobalFlags(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(log-level|log-format)(?:=(.*))?$/.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new UserError(`'--${m[1]}' needs a value`, 2);
    try {
      configureLogging(m[1] === "log-level" ? { level: value } : { format: value });
    } catch (e) {
      throw new UserError((e as Error).message, 2);
    }
  }
  return out;
}

async function help(r: Resolved, root: AnyCommand, fd: 1 | 2): Promise<void> {
  const path = r.chain.map((c) => c.name).join(" ");
  const version = r.chain.length === 1 ? (await resolveValue(root.meta))?.version : undefined;
  // Off a terminal, no stream object at all (see src/common/stdout.ts): Bun writes the fd itself.
  if (!isTerminal(fd)) {
    const text = await renderHelp(r.leaf, path, { color: useColor({ isTTY: false }), width: 100, version });
    await Bun.write(fd === 1 ? Bun.stdout : Bun.stderr, `${text}\n`);
    return;
  }
  const stream = fd === 1 ? stdout() : process.stderr;
  const width = stream.columns ? Math.min(stream.columns, 120) : 100;
  stream.write(`${await renderHelp(r.leaf, path, { color: useColor(stream), width, version })}\n`);
}

/** Runs a command tree with argv (without the program name); returns the exit code. */
export async function runCli(root: AnyCommand, rootName: string, rawArgv: string[]): Promise<number> {
  const dash = rawArgv.indexOf("--");
  const head = dash === -1 ? rawArgv : rawArgv.slice(0, dash);
  passthroughArgs = dash === -1 ? [] : rawArgv.slice(dash + 1);
  try {
    const resolved = await resolvePath(root, rootName, takeGlobalFlags(head));
    const parsed = parseWords(resolved.args, resolved.words);
    if (parsed.help) {
      await help(resolved, root, 1);
      return 0;
    }
    if (!resolved.leaf.run && (await commandNames(resolved.leaf)).length && parsed.positionals.length === 0) {
      await help(resolved, root, 2);
      return 2;
    }
    await checkUsage(resolved, parsed);
    // The leaf's own words, and what follows `--` for commands that read rawArgs (`j shell METHOD -- ARGS`).
    const rawArgs = dash === -1 ? resolved.words : [...resolved.words, "--", ...passthroughArgs];
    await runLeaf(resolved, parsed, rawArgs);
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

/** An error carrying the exit code of a remote command (`j shell …`): no message. */
function exitCodeOf(e: unknown): number | undefined {
  const code = (e as { exitCode?: unknown })?.exitCode;
  return e instanceof Error && e.name === "CommandExitError" && typeof code === "number" ? code : undefined;
}

/**
 * A driver client's InvalidArgumentError raised before any call (a `j` flag's value
 * it rejects) is a usage error; one that came back from the exporter is the call failing.
 */
function isLocalInvalidArgument(e: Error): boolean {
  return e.name === "InvalidArgumentError" && !(e as { fromExporter?: boolean }).fromExporter;
}

export function reportError(e: unknown): number {
  const passed = exitCodeOf(e);
  if (passed !== undefined) return passed;
  if (e instanceof UserError || e instanceof ConfigError) {
    console.error(`Error: ${e.message}`);
    return e.exitCode;
  }
  const err = e as Error & { code?: string };
  if (err instanceof Error && isLocalInvalidArgument(err)) {
    console.error(`Error: ${err.message}`);
    return 2;
  }
  if (typeof err?.code === "string" && /^E(ARG|_)/.test(err.code)) {
    console.error(`Error: ${err.message.replace(/\x1b\[[0-9;]*m/g, "")}`);
    return 2;
  }
  if (logLevel() === "debug") console.error(err?.stack ?? String(e));
  else console.error(`Error: ${err?.message ?? String(e)}`);
  return 1;
}
