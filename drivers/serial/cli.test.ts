import { afterEach, expect, test } from "bun:test";
import fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "citty";
import { DeadlineExceededError, InvalidArgumentError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { SerialClient } from "./client.ts";
import { runConsole } from "./console.ts";
import { PySerial } from "./driver.ts";
import { planPipe, runPipe } from "./pipe.ts";
import { ptyPeer, type PtyPeer } from "./pty-peer.ts";

const cleanups: (() => unknown)[] = [];
let served: Served<SerialClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const bytes = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

async function serveUrl(url: string): Promise<SerialClient> {
  served = await serve<SerialClient>(PySerial.create({ url }));
  return served.client;
}

async function peer(): Promise<PtyPeer> {
  const p = await ptyPeer();
  cleanups.push(() => p.close());
  return p;
}

/** Input the test types, chunk by chunk, and can end. */
function keyboard() {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writer = pipe.writable.getWriter();
  return { stream: pipe.readable, type: (s: string) => void writer.write(bytes(s)), end: () => void writer.close() };
}

/** Collects output and lets a test wait for some text in it. */
function screen() {
  let text = "";
  return {
    write: (b: Uint8Array) => void (text += str(b)),
    get text() {
      return text;
    },
    waitFor: (s: string, timeoutMs = 3000) =>
      eventually(() => expect(text).toContain(s), { what: JSON.stringify(s), interval: 10, timeout: timeoutMs }),
  };
}

test("pipe flags: upstream's conflicts, and stdin read by default only when piped", () => {
  expect(() => planPipe({ input: true, noInput: true }, false)).toThrow("cannot use both --input and --no-input");
  expect(() => planPipe({ noOutput: true, output: "x.log" }, false)).toThrow("cannot use both --no-output and --output");
  expect(() => planPipe({ noOutput: true, append: true }, false)).toThrow("cannot use both --no-output and --append");
  expect(() => planPipe({ append: true }, false)).toThrow("--append requires --output");
  expect(() => planPipe({ noOutput: true }, true)).toThrow(InvalidArgumentError);
  expect(planPipe({}, true)).toMatchObject({ input: false, noOutput: false, append: false });
  expect(planPipe({}, false).input).toBe(true);
  expect(planPipe({ noInput: true }, false).input).toBe(false);
  expect(planPipe({ input: true }, true).input).toBe(true);
  expect(planPipe({ output: "x.log", append: true }, true).status).toBe("Reading the serial port into x.log (read-only); Ctrl+C to stop");
});

test("pipe sends stdin to the port, keeps showing its output after stdin ends, and stops when the port closes", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const kb = keyboard();
  const out = screen();
  const notes: string[] = [];
  const piping = runPipe(await client.open(), planPipe({}, false), { stdin: kb.stream, stdout: out.write, stderr: (l) => notes.push(l) });
  kb.type("uname\n");
  kb.end();
  expect(str(await p.received(6))).toBe("uname\n");
  p.send("Linux\r\n");
  await out.waitFor("Linux\r\n");
  await client.disconnect();
  await piping;
  expect(notes).toEqual(["The serial connection was closed (end of stream)."]);
});

test("pipe -o writes the port's output to a file, -a appends", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const file = join(fs.mkdtempSync(join(tmpdir(), "jmp-serial-")), "serial.log");
  cleanups.push(() => fs.rmSync(file, { force: true }));
  fs.writeFileSync(file, "old\n");
  for (const [append, expected] of [[false, "first\n"], [true, "first\nsecond\n"]] as const) {
    const piping = runPipe(await client.open(), planPipe({ output: file, append }, true), {
      stdin: keyboard().stream,
      stdout: () => {
        throw new Error("nothing goes to stdout with -o");
      },
      stderr: () => {},
    });
    p.send(append ? "second\n" : "first\n");
    await eventually(() => expect(fs.readFileSync(file, "utf8")).toBe(expected), { what: `${file} to hold ${JSON.stringify(expected)}`, interval: 20 });
    await client.disconnect();
    await piping;
  }
});

test("pipe --no-output sends stdin and returns at its end", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const kb = keyboard();
  const piping = runPipe(await client.open(), planPipe({ noOutput: true }, false), { stdin: kb.stream, stdout: () => {}, stderr: () => {} });
  kb.type("reboot\n");
  kb.end();
  await piping;
  expect(str(await p.received(7))).toBe("reboot\n");
});

test("console: keys go to the device, output comes back, Ctrl+B three times leaves", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const kb = keyboard();
  const out = screen();
  const running = runConsole(await client.open(), { input: kb.stream, output: out.write });
  kb.type("ls\r");
  expect(str(await p.received(3))).toBe("ls\r");
  p.send("bin etc\r\n");
  await out.waitFor("bin etc\r\n");
  // Two presses and another key do not count; like upstream, the first presses reach the device.
  kb.type("\x02\x02x");
  expect(str(await p.received(6))).toBe("ls\r\x02\x02x");
  kb.type("a\x02\x02");
  kb.type("\x02ignored");
  expect(await running).toBe("exit");
  // Whatever the console still sent reaches the device before what a next connection sends.
  const next = await eventually(() => client.open(), { what: "the port to be released", interval: 20, timeout: 5000 });
  await next.writable.getWriter().write(bytes("|next"));
  expect(str(await p.received(14))).toBe("ls\r\x02\x02xa\x02\x02|next");
  await next.readable.cancel();
});

test("console: returns 'closed' when the device side ends", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const out = screen();
  const running = runConsole(await client.open(), { input: keyboard().stream, output: out.write });
  p.send("bye\r\n");
  await out.waitFor("bye");
  await client.disconnect();
  expect(await running).toBe("closed");
});

test("expectText sends, then waits for the answer on a real pty", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const seen: string[] = [];
  const waiting = client.expectText(/login: ?$/, { send: bytes("\r"), timeoutMs: 3000, onData: (b) => seen.push(str(b)) });
  expect(str(await p.received(1))).toBe("\r");
  p.send("\r\nboard login: ");
  expect((await waiting).before).toBe("\r\nboard ");
  expect(seen.join("")).toBe("\r\nboard login: ");
});

test("`expect` command: prints what arrives, exits cleanly on a match, fails with the last lines on timeout", async () => {
  const client = await serveUrl("loop://");
  const cli = client.cli();
  const printed: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: Uint8Array | string) => {
    printed.push(typeof chunk === "string" ? chunk : str(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    await runCommand(cli, { rawArgs: ["expect", "ok", "--send", "line one\\r\\nok\\n", "--timeout", "2"] });
    expect(printed.join("")).toBe("line one\r\nok\n");
    printed.length = 0;

    const started = performance.now();
    const err = await failureOf(runCommand(cli, { rawArgs: ["expect", "--regex", "^never$", "-s", "booting\\nstill booting\\n", "-t", "0.4"] }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toBe(
      "timed out after 0.4 s waiting for /^never$/; the last lines received were:\n  | booting\n  | still booting",
    );
    expect(printed.join("")).toBe("booting\nstill booting\n");
  } finally {
    process.stdout.write = write;
  }
  expect(String(await failureOf(runCommand(cli, { rawArgs: ["expect", "x", "--timeout", "soon"] })))).toContain(
    "--timeout must be a positive number of seconds, got 'soon'",
  );
  expect(String(await failureOf(runCommand(cli, { rawArgs: ["expect", "(", "--regex"] })))).toContain("invalid regular expression '('");
});

/**
 * A separate process running `j <serial> ARGS` against the served session, as a
 * shell would (the real `j` front end is tested elsewhere). Errors go to stderr
 * with exit code 1.
 */
function cliMain(): string {
  const dir = fs.mkdtempSync(join(tmpdir(), "jmp-serial-cli-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = join(import.meta.dir, "../..");
  const main = join(dir, "cli-main.ts");
  fs.writeFileSync(main, [
    `import { runCommand } from ${JSON.stringify(import.meta.resolve("citty"))};`,
    `import { connectSession } from ${JSON.stringify(join(root, "src/client/session-client.ts"))};`,
    `import { registerBuiltinClients } from ${JSON.stringify(join(root, "drivers/catalog.ts"))};`,
    `import { AllowList, ClientRegistry } from ${JSON.stringify(join(root, "src/driver/registry.ts"))};`,
    `const [socket, ...args] = process.argv.slice(2);`,
    `const { root } = await connectSession({ host: socket! }, registerBuiltinClients(new ClientRegistry()), new AllowList([], true));`,
    `try {`,
    `  await runCommand(root.cli()!, { rawArgs: args });`,
    `  process.exit(0);`,
    `} catch (e) {`,
    `  process.stderr.write("ERROR: " + (e as Error).message + "\\n");`,
    `  process.exit(1);`,
    `}`,
  ].join("\n"));
  return main;
}

function runCli(args: string[], stdin: string) {
  const proc = Bun.spawn([process.execPath, cliMain(), served!.socket, ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  cleanups.push(() => proc.kill());
  proc.stdin.write(stdin);
  proc.stdin.end();
  const out = screen();
  const err = screen();
  void (async () => {
    for await (const chunk of proc.stdout) out.write(chunk);
  })();
  void (async () => {
    for await (const chunk of proc.stderr) err.write(chunk);
  })();
  return { proc, out, err };
}

test("`pipe` in a process: piped stdin goes to the port, the port's output to stdout, until the port closes", async () => {
  const p = await peer();
  const client = await serveUrl(p.path);
  const { proc, out, err } = runCli(["pipe"], "uname -a\n");
  expect(str(await p.received(9, 10000))).toBe("uname -a\n");
  p.send("Linux board\r\n");
  await out.waitFor("Linux board\r\n");
  await client.disconnect();
  expect(await proc.exited).toBe(0);
  expect(err.text).toContain("Sending stdin to the serial port and its output to stdout (stdin is piped)");
  expect(err.text).toContain("The serial connection was closed (end of stream).");
});

test("`pipe --no-output` in a process sends stdin and exits; flag conflicts fail with upstream's messages", async () => {
  const p = await peer();
  await serveUrl(p.path);
  const sent = runCli(["pipe", "--no-output"], "reboot\n");
  expect(await sent.proc.exited).toBe(0);
  expect(str(await p.received(7))).toBe("reboot\n");

  for (const [args, message] of [
    [["pipe", "-o", "x.log", "--no-output"], "cannot use both --no-output and --output"],
    [["pipe", "-i", "--no-input"], "cannot use both --input and --no-input"],
    [["pipe", "--append"], "--append requires --output"],
  ] as const) {
    const run = runCli([...args], "");
    expect(await run.proc.exited).toBe(1);
    expect(run.err.text).toContain(`ERROR: ${message}`);
  }
});

test("start-console in a real terminal: raw keys reach the device, Ctrl+B x3 leaves, the terminal is restored", async () => {
  await serveUrl("loop://");
  const dir = fs.mkdtempSync(join(tmpdir(), "jmp-console-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [before, after] = [join(dir, "before"), join(dir, "after")];
  // script(1) gives the command a pty as its terminal; stty records the settings around it.
  const command = `stty -g > ${before}; ${process.execPath} ${cliMain()} ${served!.socket} start-console; stty -g > ${after}`;
  const proc = Bun.spawn(["script", "-qfec", command, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  cleanups.push(() => proc.kill());
  const out = screen();
  void (async () => {
    for await (const chunk of proc.stdout) out.write(chunk);
  })();
  // The banner is what a user waits for before typing: it comes once the terminal is raw.
  await out.waitFor("leave with Ctrl+B pressed three times", 10000);
  // In raw mode Ctrl+C is a byte for the device (here echoed back by loop://), not a signal.
  proc.stdin.write("hi\x03");
  proc.stdin.flush();
  await out.waitFor("hi\x03");
  proc.stdin.write("\x02\x02\x02");
  proc.stdin.flush();
  expect(await proc.exited).toBe(0);
  expect(fs.readFileSync(after, "utf8")).toBe(fs.readFileSync(before, "utf8"));
}, 20000);
