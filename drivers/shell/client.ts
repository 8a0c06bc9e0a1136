/**
 * Client of the Shell driver: `j <name> <method> [-e KEY=VALUE]... [ARGS]...`, one
 * subcommand per configured method, output written live, exit code passed on.
 */
import { type CommandDef, defineCommand, DriverClient, InvalidArgumentError, repeatable, stdout as stdoutStream } from "@jumpstarter/driver";
import { CommandExitError } from "./command-exit.ts";
import type { ShellOutput } from "./driver.ts";

export { CommandExitError };

/** Receives output text as it arrives; may return a promise to slow the stream down. */
export type OutputSink = (chunk: string) => void | Promise<void>;

export interface ShellRunOptions {
  /** Added to the exporter's environment; some names (PATH, LD_*, …) are refused. */
  env?: Record<string, string>;
  /** Where stdout goes; the local stdout by default. */
  stdout?: OutputSink;
  /** Where stderr goes; the local stderr by default. */
  stderr?: OutputSink;
  /** Aborting stops the remote command. */
  signal?: AbortSignal;
}

/** A sink that writes to a Node stream and waits when it is full. */
export function streamSink(stream: NodeJS.WritableStream): OutputSink {
  return (chunk) => (stream.write(chunk) ? undefined : new Promise<void>((r) => stream.once("drain", () => r())));
}

function isShellOutput(x: unknown): x is ShellOutput {
  return Array.isArray(x) && x.length === 3 && typeof x[0] === "string" && typeof x[1] === "string"
    && (x[2] === null || typeof x[2] === "number");
}

export class ShellClient extends DriverClient {
  private methodNames?: Promise<string[]>;

  /** The configured method names (asked once per client). */
  methods(): Promise<string[]> {
    this.methodNames ??= this.call<string[]>("get_methods");
    return this.methodNames;
  }

  /**
   * The raw stream of a method run: [stdout, stderr, returncode] items, the last
   * one with the return code (negative: killed by that signal; 199: timed out).
   * @example
   * for await (const [out, err, code] of shell.output("ls", ["-la"])) ...
   */
  async *output(method: string, args: string[] = [], env: Record<string, string> = {}, signal?: AbortSignal): AsyncGenerator<ShellOutput> {
    // Leaving a streaming call's loop early does not cancel the RPC by itself, and the
    // command must not run on unseen: abort it on the way out.
    const stop = new AbortController();
    const signals = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    try {
      for await (const item of this.portal.streamingCall(this.uuid, "call_method", [method, env, ...args], signals)) {
        if (!isShellOutput(item)) throw new Error(`the shell driver sent a malformed output item: ${JSON.stringify(item)}`);
        yield item;
      }
    } finally {
      stop.abort();
    }
  }

  /**
   * Runs a method, writing its output live, and resolves to its return code.
   * @example
   * const code = await shell.run("flash", ["image.bin"], { env: { VERBOSE: "1" } });
   */
  async run(method: string, args: string[] = [], opts: ShellRunOptions = {}): Promise<number> {
    const stdout = opts.stdout ?? streamSink(stdoutStream());
    const stderr = opts.stderr ?? streamSink(process.stderr);
    let returncode: number | undefined;
    for await (const [out, err, code] of this.output(method, args, opts.env, opts.signal)) {
      if (out) await stdout(out);
      if (err) await stderr(err);
      if (code !== null) returncode = code;
    }
    if (returncode === undefined) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw new Error(`the shell driver ended '${method}' without a return code`);
    }
    return returncode;
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "Shell command executor" },
      subCommands: async () => {
        const commands: Record<string, CommandDef<any>> = {};
        for (const name of await this.methods()) commands[name] = this.methodCommand(name);
        return commands;
      },
    });
  }

  private methodCommand(name: string) {
    return defineCommand({
      // Upstream hides methods starting with "_" from help; they still run.
      meta: { description: this.help(name, `Execute the ${name} shell method`), hidden: name.startsWith("_") },
      args: {
        env: repeatable({ type: "string", alias: "e", valueHint: "KEY=VALUE", description: "environment variable for the command" }),
        args: { type: "positional", required: false, description: "arguments, seen by the command as $1, $2, …" },
      },
      run: async ({ rawArgs }) => {
        const { args, env } = parseMethodArgs(rawArgs);
        const code = await this.run(name, args, { env });
        if (code !== 0) throw new CommandExitError(code < 0 ? 128 - code : code, `'${name}' exited with code ${code}`);
      },
    });
  }
}

/**
 * Options come first, as upstream: from the first argument that is not `-e`/`--env`
 * on, everything (`-la` included) goes to the command; `--` ends the options too.
 */
export function parseMethodArgs(raw: string[]): { args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < raw.length; i++) {
    const a = raw[i]!;
    let assignment: string | undefined;
    if (a === "--") {
      i++;
      break;
    } else if (a === "-e" || a === "--env") {
      assignment = raw[++i];
      if (assignment === undefined) throw new InvalidArgumentError(`${a} needs a KEY=VALUE after it`);
    } else if (a.startsWith("--env=")) {
      assignment = a.slice("--env=".length);
    } else if (a.startsWith("-e") && a.length > 2 && !a.startsWith("--")) {
      assignment = a.slice(2);
    } else {
      break;
    }
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`invalid --env value '${assignment}': use KEY=VALUE`);
    env[assignment.slice(0, eq)] = assignment.slice(eq + 1);
  }
  return { args: raw.slice(i), env };
}
