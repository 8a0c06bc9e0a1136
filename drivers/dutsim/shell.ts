/**
 * The few commands the simulated board's shell knows. Pure: a command line in,
 * text and an exit status out, so the board decides what "reboot" or "exit" does.
 */

export const KERNEL_RELEASE = "6.6.0-dutsim";
const KERNEL_VERSION = "#1 SMP PREEMPT Mon Jan  1 00:00:00 UTC 2024";

export interface ShellContext {
  hostname: string;
  user: string;
  arch: string;
  /** Seconds since the board last started booting. */
  uptime: number;
  /** The exit status of the previous command, for `$?`. */
  lastStatus: number;
}

export interface ShellResult {
  /** Text to print; lines end with "\n" (the tty turns them into "\r\n"). */
  output: string;
  status: number;
  /** What the board does after printing. */
  then?: "reboot" | "logout";
}

type Command = (args: string[], ctx: ShellContext) => ShellResult;

const ok = (output = ""): ShellResult => ({ output, status: 0 });

const COMMANDS: Record<string, Command> = {
  echo: (args) => {
    const noNewline = args[0] === "-n";
    const words = noNewline ? args.slice(1) : args;
    return ok(words.join(" ") + (noNewline ? "" : "\n"));
  },
  uname,
  cat,
  hostname: (_, ctx) => ok(`${ctx.hostname}\n`),
  whoami: (_, ctx) => ok(`${ctx.user}\n`),
  true: () => ok(),
  false: () => ({ output: "", status: 1 }),
  reboot: () => ({ output: "", status: 0, then: "reboot" }),
  exit: () => ({ output: "", status: 0, then: "logout" }),
  logout: () => ({ output: "", status: 0, then: "logout" }),
};

/** Runs one command line; an empty line does nothing and keeps `$?`. */
export function runCommandLine(line: string, ctx: ShellContext): ShellResult {
  let words: string[];
  try {
    words = splitWords(line, ctx);
  } catch (e) {
    return { output: `sh: syntax error: ${(e as Error).message}\n`, status: 2 };
  }
  const [name, ...args] = words;
  if (name === undefined) return { output: "", status: ctx.lastStatus };
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) return { output: `sh: ${name}: not found\n`, status: 127 };
  return command(args, ctx);
}

/**
 * Splits a line as sh does, in small: blanks separate words, '…' is literal, "…"
 * and bare words expand `$?` and `$NAME`, a backslash escapes the next character.
 */
function splitWords(line: string, ctx: ShellContext): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  const expand = (): string => {
    const rest = line.slice(i + 1);
    if (rest.startsWith("?")) {
      i += 2;
      return String(ctx.lastStatus);
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest)?.[0];
    if (!name) {
      i += 1;
      return "$";
    }
    i += 1 + name.length;
    return environment(ctx)[name] ?? "";
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === " " || c === "\t") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated quoted string");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new Error("unterminated quoted string");
        const d = line[i]!;
        if (d === '"') break;
        if (d === "\\" && i + 1 < line.length && '"\\$'.includes(line[i + 1]!)) {
          word += line[i + 1];
          i += 2;
        } else if (d === "$") {
          word += expand();
        } else {
          word += d;
          i++;
        }
      }
      i++;
    } else if (c === "\\") {
      word += line[i + 1] ?? "";
      inWord = true;
      i += 2;
    } else if (c === "$") {
      word += expand();
      inWord = true;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function environment(ctx: ShellContext): Record<string, string> {
  return {
    HOME: ctx.user === "root" ? "/root" : `/home/${ctx.user}`,
    USER: ctx.user,
    LOGNAME: ctx.user,
    HOSTNAME: ctx.hostname,
    SHELL: "/bin/sh",
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  };
}

function uname(args: string[], ctx: ShellContext): ShellResult {
  const fields: [flag: string, value: string][] = [
    ["s", "Linux"],
    ["n", ctx.hostname],
    ["r", KERNEL_RELEASE],
    ["v", KERNEL_VERSION],
    ["m", ctx.arch],
    ["o", "GNU/Linux"],
  ];
  const wanted = new Set<string>();
  for (const arg of args) {
    if (!arg.startsWith("-") || arg === "-") return { output: `uname: extra operand '${arg}'\n`, status: 1 };
    for (const flag of arg.slice(1)) {
      if (flag === "a") fields.forEach(([f]) => wanted.add(f));
      else if (fields.some(([f]) => f === flag)) wanted.add(flag);
      else return { output: `uname: invalid option -- '${flag}'\n`, status: 1 };
    }
  }
  if (wanted.size === 0) wanted.add("s");
  return ok(fields.filter(([f]) => wanted.has(f)).map(([, v]) => v).join(" ") + "\n");
}

function cat(args: string[], ctx: ShellContext): ShellResult {
  const files: Record<string, () => string> = {
    "/proc/uptime": () => `${ctx.uptime.toFixed(2)} ${(ctx.uptime * 3.9).toFixed(2)}\n`,
    "/etc/hostname": () => `${ctx.hostname}\n`,
  };
  let output = "";
  let status = 0;
  for (const path of args) {
    const read = Object.hasOwn(files, path) ? files[path] : undefined;
    if (read) {
      output += read();
    } else {
      output += `cat: ${path}: No such file or directory\n`;
      status = 1;
    }
  }
  return { output, status };
}
