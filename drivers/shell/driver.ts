/**
 * Shell: runs commands configured by the lab on the exporter host, as upstream's
 * jumpstarter_driver_shell. A client picks a method by name and passes arguments
 * (the script's $1, $2, …) and environment variables; output streams back live.
 */
import { statSync } from "node:fs";
import { Driver, exported, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { type MethodSpec, type ShellConfig, shellConfigShape } from "./config.ts";
import { checkEnv } from "./env.ts";
import { ShellRun } from "./process.ts";
import { SHELL_CLIENT } from "./clients.ts";

export { SHELL_CLIENT };

/**
 * One item of a `call_method` stream, as upstream's tuple: output chunks as they
 * come, `returncode` null until the last item. Upstream's client prints non-empty
 * chunks and ignores the rest, so an all-empty item is a harmless keepalive.
 */
export type ShellOutput = [stdout: string, stderr: string, returncode: number | null];

/** Upstream reports a timeout as this return code with a message on stderr. */
export const TIMEOUT_RETURN_CODE = 199;

/**
 * How often a silent command sends an empty item. The runtime can only deliver a
 * client's cancel to a stream at one of its items, so this bounds how long a
 * cancelled command keeps running.
 */
const KEEPALIVE_MS = 500;

export class Shell extends Driver<ShellConfig> {
  static override readonly client = SHELL_CLIENT;
  static override readonly configShape = shellConfigShape;
  static override readonly driverType = "shell";
  static override readonly summary = "runs configured shell commands on the exporter host, streaming their output";

  private readonly running = new Set<ShellRun>();

  constructor(config: ShellConfig) {
    super(config);
    for (const [name, spec] of Object.entries(config.methods)) {
      if (spec.description !== undefined) this.methodsDescription[name] = spec.description;
    }
  }

  /** The configured method names, in config order. */
  @exported
  async getMethods(): Promise<string[]> {
    return Object.keys(this.config.methods);
  }

  /**
   * Runs a method: `args` become $1, $2, … of the script ($0 is the method name),
   * `env` is added to the exporter's environment.
   */
  @exported
  async *callMethod(method: unknown, env: unknown, ...args: unknown[]): AsyncGenerator<ShellOutput> {
    const name = typeof method === "string" ? method : String(method);
    const spec = this.method(name);
    const extraEnv = checkEnv(env);
    const argv = args.map((a, i) => {
      if (typeof a !== "string") throw new InvalidArgumentError(`argument ${i + 1} of '${name}' must be a string, got ${a === null ? "null" : typeof a}`);
      return a;
    });
    const cwd = this.config.cwd;
    if (cwd !== undefined && !statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UnavailableError(`the working directory '${cwd}' configured for this shell driver does not exist`);
    }
    const timeout = spec.timeout ?? this.config.timeout;
    this.log.info(`calling ${name} with ${argv.length} argument(s)${Object.keys(extraEnv).length ? ` and env ${Object.keys(extraEnv).join(", ")}` : ""}`);

    const run = new ShellRun([...this.config.shell, spec.command, name, ...argv], {
      cwd,
      env: { ...process.env, ...extraEnv },
      timeoutMs: timeout * 1000,
      idleMs: KEEPALIVE_MS,
    });
    this.running.add(run);
    try {
      for await (const event of run.events()) {
        switch (event.kind) {
          case "stdout":
            this.debug(`${name} stdout: ${event.text.trimEnd()}`);
            yield [event.text, "", null];
            break;
          case "stderr":
            this.debug(`${name} stderr: ${event.text.trimEnd()}`);
            yield ["", event.text, null];
            break;
          case "idle":
            yield ["", "", null];
            break;
          case "exit":
            if (event.timedOut) {
              this.log.error(`${name} timed out after ${timeout} seconds`);
              yield ["", `\nTimeout expired while running ${name}: killed after ${timeout} seconds\n`, TIMEOUT_RETURN_CODE];
            } else {
              if (event.code !== 0) this.log.info(`${name} return code: ${event.code}`);
              yield ["", "", event.code];
            }
        }
      }
    } finally {
      this.running.delete(run);
    }
  }

  /** Ends commands still running when the lease ends. */
  override async close(): Promise<void> {
    await Promise.all([...this.running].map((r) => r.stop()));
  }

  private method(name: string): MethodSpec {
    const spec = Object.hasOwn(this.config.methods, name) ? this.config.methods[name] : undefined;
    if (!spec) {
      throw new InvalidArgumentError(`unknown shell method '${name}'; configured methods: ${Object.keys(this.config.methods).join(", ")}`);
    }
    return spec;
  }

  private debug(message: string): void {
    if (this.config.log_level === "DEBUG") this.log.debug(message);
  }
}
