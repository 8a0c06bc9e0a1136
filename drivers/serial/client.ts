/**
 * The serial client (upstream's PySerialClient): the port as a byte stream, the
 * modem lines, and `j <name> pipe | start-console | expect`. Everything here uses
 * only the `connect` stream (plus set_dtr/set_rts/close when called), so it works
 * with any driver that reports this client label, such as a simulated board's console.
 */
import { defineCommand, DriverClient, InvalidArgumentError, stdout, type ByteStream } from "@jumpstarter/driver";
import { CONSOLE_HINT, runConsole } from "./console.ts";
import { compilePattern, Expecter, unescapeText, type Match, type Pattern } from "./expect.ts";
import { planPipe, runPipe } from "./pipe.ts";

export class SerialClient extends DriverClient {
  /**
   * Opens the port: bytes written go to the device, bytes read came from it. With
   * `take`, a console several connections share gives this one its input at once,
   * and the one that had it becomes read-only (our exporter; others ignore it).
   */
  open(opts: { take?: boolean } = {}): Promise<ByteStream> {
    return this.stream("connect", undefined, opts.take ? { x_jmp_take: true } : {});
  }

  /** Sets the DTR line (a pty has none and refuses). */
  async setDtr(value: boolean): Promise<void> {
    await this.call("set_dtr", value);
  }

  /** Sets the RTS line (a pty has none and refuses). */
  async setRts(value: boolean): Promise<void> {
    await this.call("set_rts", value);
  }

  /** Ends the port's open connection from the exporter's side (wire method `close`). */
  async disconnect(): Promise<void> {
    await this.call("close");
  }

  override cli() {
    return defineCommand({
      meta: { description: this.description ?? "Serial port client" },
      subCommands: {
        "start-console": defineCommand({
          meta: { description: "Start an interactive console on the serial port (leave with Ctrl+B three times)" },
          args: { take: TAKE_ARG },
          run: ({ args }) => this.startConsole(Boolean(args.take)),
        }),
        pipe: defineCommand({
          meta: { description: "Copy the serial port's output to stdout or a file, and piped stdin to the port" },
          args: {
            output: { type: "string", alias: "o", description: "write the port's output to this file instead of stdout" },
            input: { type: "boolean", alias: "i", description: "send stdin to the port even if it is a terminal (--no-input: never)" },
            append: { type: "boolean", alias: "a", description: "append to the --output file instead of overwriting it" },
            take: TAKE_ARG,
          },
          run: async ({ args, rawArgs }) => {
            // citty turns --no-X into X=false, which hides "-o F --no-output" and "-i --no-input";
            // look at the raw words for those.
            const given = (...names: string[]) => rawArgs.some((a) => names.some((n) => a === n || a.startsWith(`${n}=`)));
            const plan = planPipe(
              {
                output: typeof args.output === "string" ? args.output : given("-o", "--output") ? "" : undefined,
                input: given("-i", "--input") || undefined,
                noInput: given("--no-input"),
                append: args.append,
                noOutput: given("--no-output"),
              },
              Boolean(process.stdin.isTTY),
            );
            note(plan.status);
            const stream = await this.open({ take: args.take });
            stream.notices?.listen((text) => note(`jmp: ${text}`));
            await runPipe(stream, plan, { stdin: Bun.stdin.stream(), stdout: writeStdout, stderr: note });
          },
        }),
        expect: defineCommand({
          meta: { description: "Wait until PATTERN appears on the port, printing what arrives; fails after --timeout" },
          args: {
            pattern: { type: "positional", required: true, description: "the text to wait for (a regular expression with --regex)" },
            send: { type: "string", alias: "s", description: "send this first (\\n, \\r, \\t, \\e, \\\\ and \\xHH are interpreted)" },
            timeout: { type: "string", alias: "t", default: "10", description: "seconds to wait" },
            regex: { type: "boolean", alias: "r", description: "PATTERN is a regular expression" },
          },
          run: async ({ args }) => {
            const timeout = Number(args.timeout);
            if (!Number.isFinite(timeout) || timeout <= 0) throw new InvalidArgumentError(`--timeout must be a positive number of seconds, got '${args.timeout}'`);
            const pattern = args.regex ? compilePattern(args.pattern) : args.pattern;
            const send = args.send === undefined ? undefined : unescapeText(args.send);
            await this.expectText(pattern, { send, timeoutMs: timeout * 1000, onData: (b) => void writeStdout(b) });
          },
        }),
      },
    });
  }

  /**
   * Opens the port, sends `send` if given, and waits for `pattern`; rejects on
   * timeout or end of stream with the last lines received.
   */
  async expectText(
    pattern: Pattern,
    options: { send?: Uint8Array; timeoutMs: number; onData?: (bytes: Uint8Array) => void },
  ): Promise<Match> {
    const stream = await this.open();
    const expecter = new Expecter(stream.readable, { onData: options.onData });
    try {
      if (options.send?.byteLength) {
        const writer = stream.writable.getWriter();
        await writer.write(options.send);
        writer.releaseLock();
      }
      return await expecter.expect(pattern, options.timeoutMs);
    } finally {
      await expecter.close();
      await stream.writable.abort().catch(() => {});
    }
  }

  private async startConsole(take: boolean): Promise<void> {
    const stdin = process.stdin;
    const raw = Boolean(stdin.isTTY);
    const stream = await this.open({ take });
    // In raw mode a newline does not return the carriage.
    stream.notices?.listen((text) => process.stderr.write(`\r\njmp: ${text}\r\n`));
    // A signal would skip the finally below; put the terminal back on the way out.
    const restoreAndExit = (signal: NodeJS.Signals) => {
      if (raw) stdin.setRawMode(false);
      process.exit(128 + (signal === "SIGHUP" ? 1 : 15));
    };
    process.once("SIGTERM", restoreAndExit);
    process.once("SIGHUP", restoreAndExit);
    try {
      // Raw before the hint, so that keys typed as soon as it shows are not line-buffered.
      if (raw) stdin.setRawMode(true);
      note(CONSOLE_HINT);
      const how = await runConsole(stream, { input: Bun.stdin.stream(), output: writeStdout });
      if (how === "closed") note("\r\nThe serial connection was closed.");
    } finally {
      if (raw) stdin.setRawMode(false);
      process.off("SIGTERM", restoreAndExit);
      process.off("SIGHUP", restoreAndExit);
    }
  }
}

const TAKE_ARG = {
  type: "boolean",
  description: "take the console's input from another connection typing on it (which becomes read-only and is told so)",
} as const;

/** A status line on stderr (console.error would colour it red on a terminal). */
function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

function writeStdout(bytes: Uint8Array): Promise<void> | void {
  const out = stdout();
  if (!out.write(bytes)) return new Promise((r) => out.once("drain", () => r()));
}
