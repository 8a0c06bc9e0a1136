/**
 * The `--help` text of a command, for `jmp` and `j` alike. We render it ourselves
 * rather than with citty's renderUsage: flags are shown as users type them
 * (kebab-case), every column starts at one place, long descriptions wrap under
 * their own column, and colours appear only where useColor allows.
 */
import type { ArgDef, CommandMeta } from "citty";
import { isRepeatable } from "../common/repeatable.ts";
import { type AnyCommand, aliasesOf, kebab, positionalRequired, resolveValue } from "./tree.ts";

/** `--selector SELECTOR`, `-l, --selector SELECTOR`: the flag as typed, with its value's name. */
function flagLabel(name: string, def: ArgDef): string {
  const short = aliasesOf(def).filter((a) => a.length === 1).map((a) => `-${a}`);
  const long = [kebab(name), ...aliasesOf(def).filter((a) => a.length > 1 && a !== kebab(name))].map((a) => `--${a}`);
  const value = def.type === "string" || def.type === "enum" ? ` ${valueName(name, def)}` : "";
  // Long-only flags are indented past a short one, so the long names line up.
  return (short.length ? `${short.join(", ")}, ` : "    ") + long.join(", ") + value;
}

function valueName(name: string, def: ArgDef): string {
  if (def.type === "enum" && def.options?.length) return def.options.join("|");
  return def.valueHint ?? kebab(name).replace(/-/g, "_").toUpperCase();
}

function describe(def: ArgDef, required: boolean): string {
  const text = def.description ?? "";
  const notes = [text];
  if (isRepeatable(def) && !/\(repeatable\b/.test(text)) notes.push("(repeatable)");
  if (required) notes.push("(required)");
  if (def.default !== undefined && def.default !== "" && def.default !== false) notes.push(`(default: ${def.default})`);
  return notes.filter(Boolean).join(" ");
}

interface Style {
  bold(s: string): string;
  dim(s: string): string;
  accent(s: string): string;
}

const plain: Style = { bold: (s) => s, dim: (s) => s, accent: (s) => s };
const ansi: Style = {
  bold: (s) => `\x1b[1m${s}\x1b[22m`,
  dim: (s) => `\x1b[2m${s}\x1b[22m`,
  accent: (s) => `\x1b[36m${s}\x1b[39m`,
};

/** Two columns: the left ones padded to `left`, the right ones wrapped under their own start. */
function columns(rows: [string, string][], left: number, style: Style, width: number): string[] {
  const indent = 2 + left + 3;
  const room = width - indent;
  return rows.map(([l, r]) => {
    const lines = room >= 30 ? wrap(r, room) : [r];
    const head = `  ${style.accent(l)}${" ".repeat(left - l.length)}`;
    if (!lines[0]) return head.trimEnd();
    return [`${head}   ${lines[0]}`, ...lines.slice(1).map((t) => " ".repeat(indent) + t)].join("\n");
  });
}

function wrap(text: string, room: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines;
}

/**
 * The help of `cmd`, reached as `path` (e.g. "jmp lease create"). `version` is the
 * root's, shown on the root only.
 */
export async function renderHelp(cmd: AnyCommand, path: string, opts: { color: boolean; width: number; version?: string }): Promise<string> {
  const style = opts.color ? ansi : plain;
  const meta: CommandMeta = (await resolveValue(cmd.meta)) ?? {};
  const args = Object.entries(((await resolveValue(cmd.args)) ?? {}) as Record<string, ArgDef>);
  const subs = Object.entries(((await resolveValue(cmd.subCommands)) ?? {}) as Record<string, AnyCommand>);

  const flags = args.filter(([, d]) => d.type !== "positional");
  const positionals = args.filter(([, d]) => d.type === "positional");
  const commands: [string, string][] = [];
  for (const [name, sub] of subs) {
    const m: CommandMeta = (await resolveValue((await resolveValue(sub))?.meta)) ?? {};
    if (m.hidden) continue;
    commands.push([[name, ...aliasesOf(m)].join(", "), m.description ?? ""]);
  }

  const usage = [path];
  if (flags.length) usage.push("[OPTIONS]");
  for (const [name, d] of flags) if (d.required && d.default === undefined) usage.push(flagLabel(name, d).trim().replace(/^-\w, /, ""));
  for (const [name, d] of positionals) usage.push(positionalRequired(d) ? `<${name.toUpperCase()}>` : `[${name.toUpperCase()}]`);
  const names = commands.map(([n]) => n.split(", ")[0]!).join("|");
  if (commands.length) usage.push(names.length > 60 ? "<COMMAND>" : names);

  const argRows: [string, string][] = positionals.map(([n, d]) => [n.toUpperCase(), describe(d, positionalRequired(d))]);
  const flagRows: [string, string][] = flags.map(([n, d]) => [flagLabel(n, d), describe(d, d.required === true && d.default === undefined)]);
  for (const [n, d] of flags) {
    // citty reads --no-X as X=false; worth showing where X is on by default.
    if (d.type === "boolean" && (d.default === true || d.negativeDescription) && !/^no[-A-Z]/.test(n)) flagRows.push([`    --no-${kebab(n)}`, d.negativeDescription ?? ""]);
  }
  flagRows.push(["-h, --help", "show this help"]);
  // One description column for the whole page.
  const left = Math.max(...[...argRows, ...flagRows, ...commands].map(([l]) => l.length));
  const table = (rows: [string, string][]) => columns(rows, left, style, opts.width);

  const out: string[] = [];
  if (meta.description) out.push(style.dim(`${meta.description}${opts.version ? ` (${path} v${opts.version})` : ""}`), "");
  out.push(`${style.bold("USAGE")} ${usage.join(" ")}`, "");
  if (argRows.length) out.push(style.bold("ARGUMENTS"), ...table(argRows), "");
  out.push(style.bold("OPTIONS"), ...table(flagRows), "");
  if (commands.length) {
    out.push(style.bold("COMMANDS"), ...table(commands), "");
    out.push(`Use '${path} <command> --help' for more about a command.`);
  }
  return out.join("\n").trimEnd();
}
