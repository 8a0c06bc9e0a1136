/**
 * Running a citty command tree the way our users expect: `--help` anywhere before
 * `--`, global `--log-level`/`--log-format`, unknown flags and commands rejected
 * with a hint, and errors printed as one line (a stack only at debug level).
 * Exit codes: 0 ok, 1 failure, 2 usage or configuration error, N a command's own code.
 */
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { ConfigError, UserError } from "../common/errors.ts";
import { configureLogging, logLevel } from "../common/log.ts";

let passthroughArgs: string[] = [];

/** What followed `--` on the command line (`jmp shell -- make test`). */
export function passthrough(): string[] {
  return passthroughArgs;
}

type AnyCommand = CommandDef<any>;

async function resolve<T>(v: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined): Promise<T | undefined> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

interface Resolved {
  chain: { name: string; cmd: AnyCommand }[];
  leaf: AnyCommand;
  flags: string[];
}

async function subCommandNamed(cmd: AnyCommand, name: string): Promise<AnyCommand | undefined> {
  const subs = await resolve(cmd.subCommands);
  if (!subs) return undefined;
  if (name in subs) return resolve(subs[name] as AnyCommand);
  for (const sub of Object.values(subs)) {
    const def = (await resolve(sub)) as AnyCommand;
    const meta = await resolve(def.meta);
    const aliases = meta?.alias === undefined ? [] : Array.isArray(meta.alias) ? meta.alias : [meta.alias];
    if (aliases.includes(name)) return def;
  }
  return undefined;
}

function takesValue(args: ArgsDef, flag: string): boolean {
  const name = flag.replace(/^-{1,2}/, "");
  for (const [key, def] of Object.entries(args)) {
    if (def.type !== "string" && def.type !== "enum") continue;
    const aliases = def.alias === undefined ? [] : Array.isArray(def.alias) ? def.alias : [def.alias];
    if (key === name || kebab(key) === name || aliases.includes(name)) return true;
  }
  return false;
}

const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();

async function resolvePath(root: AnyCommand, rootName: string, argv: string[]): Promise<Resolved> {
  const chain = [{ name: rootName, cmd: root }];
  let cmd = root;
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const args = ((await resolve(cmd.args)) ?? {}) as ArgsDef;
    if (a.startsWith("-") && a !== "-") {
      flags.push(a);
      if (!a.includes("=") && takesValue(args, a)) i++;
      continue;
    }
    const sub = await subCommandNamed(cmd, a);
    if (!sub) break;
    cmd = sub;
    chain.push({ name: a, cmd: sub });
  }
  return { chain, leaf: cmd, flags };
}

function checkFlags(resolved: Resolved, args: ArgsDef): void {
  const known = new Set<string>(["help", "h"]);
  for (const [key, def] of Object.entries(args)) {
    // citty reads --no-X as X=false for any X; some commands give it a meaning.
    known.add(key).add(kebab(key)).add(`no-${key}`).add(`no-${kebab(key)}`);
    const alias = (def as { alias?: string | string[] }).alias;
    for (const al of alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]) known.add(al);
  }
  for (const flag of resolved.flags) {
    const name = flag.replace(/^-{1,2}/, "").split("=")[0]!;
    // Bundled short flags (-abc) are not part of our contract; treat each as a name.
    if (!known.has(name)) {
      const where = resolved.chain.map((c) => c.name).join(" ");
      const near = [...known].find((k) => k.length > 2 && (k.startsWith(name) || name.startsWith(k) || distance(k, name) <= 2));
      const hint = near ? ` (did you mean --${near}?)` : "";
      throw new UserError(`unknown option '${flag.split("=")[0]}' for '${where}'${hint}; see '${where} --help'`, 2);
    }
  }
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

async function usage(resolved: Resolved): Promise<string> {
  const parentName = resolved.chain.slice(0, -1).map((c) => c.name).join(" ");
  // Driver clients build commands without names; name each by where it was reached.
  const meta = (await resolve(resolved.leaf.meta)) ?? {};
  const leaf = { ...resolved.leaf, meta: { ...meta, name: resolved.chain.at(-1)!.name } };
  const text = await renderUsage(leaf, parentName ? { meta: { name: parentName } } : undefined);
  // Our arg keys are camelCase for typed access; users type kebab-case flags.
  return text.replace(/\(undefined\)/g, "").replace(/--([a-z][a-z0-9]*[A-Z][A-Za-z0-9]*)/g, (_, n: string) => `--${kebab(n)}`);
}

/** Runs a command tree with argv (without the program name); returns the exit code. */
export async function runCli(root: AnyCommand, rootName: string, rawArgv: string[]): Promise<number> {
  const dash = rawArgv.indexOf("--");
  const head = dash === -1 ? rawArgv : rawArgv.slice(0, dash);
  passthroughArgs = dash === -1 ? [] : rawArgv.slice(dash + 1);
  try {
    const argv = takeGlobalFlags(head);
    const resolved = await resolvePath(root, rootName, argv);
    if (argv.includes("--help") || argv.includes("-h")) {
      console.log(await usage(resolved));
      return 0;
    }
    const leafArgs = ((await resolve(resolved.leaf.args)) ?? {}) as ArgsDef;
    const subs = await resolve(resolved.leaf.subCommands);
    if (subs && Object.keys(subs).length && !resolved.leaf.run) {
      const next = argv.find((a, i) => !a.startsWith("-") && i >= resolved.chain.length - 1);
      if (next === undefined) {
        console.log(await usage(resolved));
        return resolved.chain.length === 1 && argv.length === 0 ? 0 : 2;
      }
      const where = resolved.chain.map((c) => c.name).join(" ");
      throw new UserError(`unknown command '${next}' for '${where}'; see '${where} --help'`, 2);
    }
    checkFlags(resolved, leafArgs);
    const where = resolved.chain.map((c) => c.name).join(" ");
    if (!resolved.leaf.run && !(subs && Object.keys(subs).length)) throw new UserError(`'${where}' offers no commands`, 2);
    const positionals = argv.filter((a, i) => !a.startsWith("-") && !(i > 0 && argv[i - 1]!.startsWith("-") && !argv[i - 1]!.includes("=") && takesValue(leafArgs, argv[i - 1]!)));
    const extra = positionals.slice(resolved.chain.length - 1);
    if (extra.length && !Object.values(leafArgs).some((a) => a.type === "positional")) {
      throw new UserError(`'${where}' takes no argument '${extra[0]}'; see '${where} --help'`, 2);
    }
    await runCommand(root, { rawArgs: argv });
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

export function reportError(e: unknown): number {
  const passed = exitCodeOf(e);
  if (passed !== undefined) return passed;
  if (e instanceof UserError || e instanceof ConfigError) {
    console.error(`Error: ${e.message}`);
    return e.exitCode;
  }
  const err = e as Error & { code?: string };
  if (typeof err?.code === "string" && /^E(ARG|_)/.test(err.code)) {
    console.error(`Error: ${err.message.replace(/\x1b\[[0-9;]*m/g, "")}`);
    return 2;
  }
  if (logLevel() === "debug") console.error(err?.stack ?? String(e));
  else console.error(`Error: ${err?.message ?? String(e)}`);
  return 1;
}
