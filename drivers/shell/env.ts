/**
 * Which environment variables a client may set for a shell method. The exporter
 * runs commands on its own host, so a variable that changes how programs load
 * code (LD_PRELOAD, BASH_ENV, PATH, …) would let a client run anything it likes.
 */
import { InvalidArgumentError } from "@jumpstarter/driver";

/** Upstream's list, plus the variables that make bash, sh or a language runtime load or run code. */
const BLOCKED = new Set([
  // upstream
  "LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "PYTHONPATH", "BASH_ENV", "KUBECONFIG", "HOME",
  // shells: startup files, option sets, word splitting, traced prompts
  "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "PS4", "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE", "SHELL",
  // glibc and runtimes that read code or options from the environment
  "GCONV_PATH", "PYTHONHOME", "PYTHONSTARTUP", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB",
  "PERLLIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
]);

const BLOCKED_PREFIXES = ["LD_", "BASH_FUNC_", "DYLD_"];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks what a client sent as `env` and returns it as a string map.
 * Upstream's message wording ("blocked for security reasons") is kept for scripts that match on it.
 */
export function checkEnv(env: unknown): Record<string, string> {
  if (env === null || env === undefined) return {};
  if (typeof env !== "object" || Array.isArray(env)) {
    throw new InvalidArgumentError(`env must be a mapping of variable names to strings, got ${Array.isArray(env) ? "a list" : typeof env}`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!NAME.test(key)) {
      throw new InvalidArgumentError(`invalid environment variable name '${key}' (letters, digits and _, not starting with a digit)`);
    }
    if (BLOCKED.has(key) || BLOCKED_PREFIXES.some((p) => key.startsWith(p))) {
      throw new InvalidArgumentError(`environment variable '${key}' is blocked for security reasons`);
    }
    if (typeof value !== "string") {
      throw new InvalidArgumentError(`environment variable '${key}' must be a string, got ${value === null ? "null" : typeof value}`);
    }
    out[key] = value;
  }
  return out;
}
