/**
 * The hooks of an exporter config checked and resolved to the programs that run
 * them (hooks.ts runs them). Apart from hooks.ts so that `jmp run`'s supervisor,
 * which checks them before it starts a worker, does not load the exporter's server.
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, extname, isAbsolute, resolve } from "node:path";
import { ConfigError } from "../common/errors.ts";
import type { ExporterConfig, HookConfig } from "../common/exporter-config.ts";

export type HookName = "beforeLease" | "afterLease" | "healthCheck";

/** A hook ready to run: its program and arguments, checked at start. */
export interface ResolvedHook {
  name: HookName;
  config: HookConfig;
  argv: string[];
}

export type ResolvedHooks = Partial<Record<HookName, ResolvedHook>>;

/** A single line without blanks that names a path: meant as a script file, even if there is none. */
function looksLikePath(line: string): boolean {
  return !/\s/.test(line) && (/^(\/|\.\.?\/|~\/)/.test(line) || /\.(sh|bash|py)$/.test(line));
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The hooks of `config`, each with the program that will run it; a ConfigError
 * (exit code 2) naming the file and key when a script file or interpreter is missing.
 * A single-line `script` that names an existing file runs that file (relative paths
 * from the config file's directory), as upstream; anything else runs inline (`-c`).
 */
export function resolveHooks(config: ExporterConfig, env: NodeJS.ProcessEnv = process.env): ResolvedHooks {
  const out: ResolvedHooks = {};
  const base = existsSync(config.file) ? dirname(resolve(config.file)) : process.cwd();
  for (const name of ["beforeLease", "afterLease", "healthCheck"] as const) {
    const hook = config.hooks?.[name];
    const script = hook?.script.trim();
    // An empty script is no hook, as upstream.
    if (!hook || !script) continue;
    const key = `hooks.${name}`;
    const fail = (sub: string, problem: string) => new ConfigError(config.file, `${key}.${sub}`, problem);
    let file: string | undefined;
    if (!script.includes("\n")) {
      const path = isAbsolute(script) ? script : resolve(base, script);
      if (existsSync(path)) {
        if (!statSync(path).isFile()) throw fail("script", `${path} is not a file`);
        try {
          accessSync(path, constants.R_OK);
        } catch {
          throw fail("script", `${path} cannot be read by this user`);
        }
        file = path;
      } else if (looksLikePath(script)) {
        throw fail("script", `${path}: no such file (a single line naming a file runs that file${isAbsolute(script) ? "" : `; relative to ${base}`}; write the command inline otherwise)`);
      }
    }
    let interpreter: string;
    if (hook.exec) {
      const found = hook.exec.includes("/") ? (executable(hook.exec) ? hook.exec : undefined) : Bun.which(hook.exec, { PATH: env.PATH ?? "" });
      if (!found) {
        throw fail("exec", hook.exec.includes("/")
          ? `${hook.exec}: no such program, or not executable`
          : `'${hook.exec}' is not on the PATH (${env.PATH ?? ""}): install it or give its full path`);
      }
      interpreter = found;
    } else if (file && extname(file).toLowerCase() === ".py") {
      const python = Bun.which("python3", { PATH: env.PATH ?? "" });
      if (!python) throw fail("script", `${file} is a Python script, but python3 is not on the PATH: install it, or set ${key}.exec`);
      interpreter = python;
    } else {
      interpreter = "/bin/sh";
    }
    // Upstream passes the script as written (not trimmed) to `-c`.
    out[name] = { name, config: hook, argv: file ? [interpreter, file] : [interpreter, "-c", hook.script] };
  }
  return out;
}
