/**
 * Child processes for the interop tests: long-running servers whose output we
 * watch line by line (to know when they are ready and what they saw), and
 * one-shot commands bounded by a timeout.
 */
import { existsSync } from "node:fs";
import type { Subprocess } from "bun";
import { readLines } from "../../src/common/lines.ts";

export const PYTHON = "/usr/bin/python3";

/** Why the Python interop tests cannot run here (Debian's grpcio, protobuf and protoc), or undefined when they can. */
export function missingPython(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
  if (Bun.spawnSync([PYTHON, "-c", "import grpc, google.protobuf"]).exitCode !== 0) {
    return "the Python modules grpc and google.protobuf are missing";
  }
  if (!Bun.which("protoc")) return "protoc is missing";
  return undefined;
}

const ANSI = /\x1b\[[0-9;]*m/g;

/** A server process; every line of its stdout and stderr is kept, in order of arrival. */
export class Watched {
  readonly lines: string[] = [];
  private readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  private changed: () => void = () => {};
  private exitCode: number | null = null;

  constructor(readonly what: string, cmd: string[], env?: Record<string, string | undefined>) {
    this.proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
    void this.collect(this.proc.stdout);
    void this.collect(this.proc.stderr);
    void this.proc.exited.then((code) => {
      this.exitCode = code;
      this.changed();
    });
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    // Its last line too, newline or not.
    await readLines(stream, (lines) => {
      this.lines.push(...lines.map((l) => l.replace(ANSI, "")));
      this.changed();
    });
  }

  /** Waits until `found` returns something for the lines so far; fails on exit or timeout with the output. */
  async waitFor<T>(found: (lines: string[]) => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = found(this.lines);
      if (result !== undefined) return result;
      const left = deadline - Date.now();
      if (this.exitCode !== null || left <= 0) {
        const why = this.exitCode !== null ? `exited with ${this.exitCode}` : `gave no sign within ${timeoutMs} ms`;
        throw new Error(`${this.what} ${why} while waiting for ${what}; its output:\n${this.lines.join("\n")}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.changed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** SIGTERM, then SIGKILL if it has not gone within two seconds. */
  async stop(): Promise<void> {
    if (this.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    const gone = await Promise.race([this.proc.exited.then(() => true), Bun.sleep(2000).then(() => false)]);
    if (!gone) {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
    }
  }
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`), colours stripped from its output. */
export async function run(cmd: string[], env?: Record<string, string | undefined>, timeoutMs = 20_000): Promise<Ran> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env, timeout: timeoutMs, killSignal: "SIGKILL" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (proc.signalCode === "SIGKILL") throw new Error(`${cmd.join(" ")} took longer than ${timeoutMs} ms; stderr:\n${stderr}`);
  return { code, stdout: stdout.replace(ANSI, ""), stderr: stderr.replace(ANSI, "") };
}

/** Runs a Python script that prints its findings as one JSON line. */
export async function runPythonJson<T = any>(script: string, args: string[]): Promise<T> {
  const r = await run([PYTHON, script, ...args]);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !last.startsWith("{")) {
    throw new Error(`${script} ${args.join(" ")} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return JSON.parse(last) as T;
}
