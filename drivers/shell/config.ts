/**
 * The `config:` of a Shell driver, as upstream: `methods` maps a name to a
 * command string or to `{command, description, timeout}`.
 */
import { config, type ConfigOf } from "@jumpstarter/driver";

/** Upstream runs this when a method mapping gives a description but no command. */
export const DEFAULT_COMMAND = "echo Hello";

export interface MethodSpec {
  command: string;
  description?: string;
  /** Seconds; the driver-wide `timeout` when not given. */
  timeout?: number;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function positiveSeconds(description: string): config.Field<number> {
  const expected = "a number of seconds greater than 0";
  const number = config.number();
  return {
    expected,
    optional: false,
    description,
    parse(v, p) {
      const n = number.parse(v, p);
      if (n <= 0) throw new config.SchemaError(p, `expected ${expected}, got ${n}`);
      return n;
    },
  };
}

function command(): config.Field<string> {
  const expected = "a non-empty shell command";
  return {
    expected,
    optional: false,
    parse(v, p) {
      if (typeof v !== "string" || v.trim() === "") throw new config.SchemaError(p, `expected ${expected}, got ${describe(v)}`);
      return v;
    },
  };
}

const methodMapping = config.object({
  command: config.optional(command()),
  description: config.optional(config.string()),
  timeout: config.optional(positiveSeconds("this method's timeout")),
});

function method(): config.Field<MethodSpec> {
  const expected = "a command string or a mapping with command, description and timeout";
  return {
    expected,
    optional: false,
    parse(v, p) {
      if (typeof v === "string") return { command: command().parse(v, p) };
      if (!config.isPlainObject(v)) throw new config.SchemaError(p, `expected ${expected}, got ${describe(v)}`);
      const m = methodMapping.parse(v, p);
      return { command: m.command ?? DEFAULT_COMMAND, description: m.description, timeout: m.timeout };
    },
  };
}

function methods(): config.Field<Record<string, MethodSpec>> {
  const expected = "a mapping of method names to commands";
  const record = config.record(method());
  return {
    expected,
    optional: false,
    description: "method name → command, or → {command, description, timeout}",
    parse(v, p) {
      if (!config.isPlainObject(v)) throw new config.SchemaError(p, `expected ${expected}, got ${describe(v)}`);
      const out = record.parse(v, p);
      if (Object.keys(out).length === 0) throw new config.SchemaError(p, "no methods configured; add at least one, e.g. `ls: \"ls -la\"`");
      return out;
    },
  };
}

function shellArgv(): config.Field<string[]> {
  const list = config.list(config.string({ nonEmpty: true }));
  return {
    ...list,
    parse(v, p) {
      const out = list.parse(v, p);
      if (out.length === 0) throw new config.SchemaError(p, "expected the shell and its flags, e.g. [bash, -c], got an empty list");
      return out;
    },
  };
}

export const shellConfigShape = {
  methods: methods(),
  shell: config.withDefault(shellArgv(), ["bash", "-c"]),
  timeout: config.withDefault(positiveSeconds("seconds before a method is killed"), 300),
  cwd: config.optional(config.string({ nonEmpty: true, description: "working directory of the commands" })),
  log_level: config.withDefault(
    config.oneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], { description: "DEBUG also logs every output chunk" }),
    "INFO",
  ),
};

export type ShellConfig = ConfigOf<typeof shellConfigShape>;
