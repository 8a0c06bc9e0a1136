/**
 * Simulated GPIO chips for tests: runs a command under umockdev-gpiochip.py (see
 * there for how and its limits), then lets a test read the ioctls the command
 * made, drive input lines from outside and read what the lines do.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const PYTHON = "/usr/bin/python3";
const RUNNER = join(import.meta.dir, "umockdev-gpiochip.py");

export interface ChipSpec {
  name: string;
  label?: string;
  lines: number;
  names?: Record<number, string>;
  /** Lines someone else holds: offset → consumer. */
  used?: Record<number, string>;
  /** Levels driven from outside: offset → 0 or 1. */
  pulls?: Record<number, 0 | 1>;
}

/** One line of the simulation's log: an ioctl (decoded), an edge event sent, a release, a read. */
export interface SimRecord {
  chip: string;
  ioctl?: string;
  result?: number | string;
  offset?: number;
  offsets?: number[];
  consumer?: string;
  num_lines?: number;
  event_buffer_size?: number;
  config?: { flags: string[]; attrs: { id: string; value: string; mask: string }[] } | "invalid";
  mask?: string;
  bits?: string;
  physical?: Record<string, number>;
  event?: string;
  closed?: boolean;
  released?: number[];
  read?: number;
}

export interface LineState {
  requested: boolean;
  consumer: string;
  flags: string[];
  physical: 0 | 1;
  logical: 0 | 1;
  events?: string[];
}

/** Why the simulation cannot run here, or undefined when it can. */
export function simulationMissing(): string | undefined {
  const probe = Bun.spawnSync([PYTHON, "-c", "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"]);
  const preload = Bun.spawnSync(["/sbin/ldconfig", "-p"]).stdout.toString().includes("libumockdev-preload.so.0");
  if (probe.exitCode !== 0 || !preload) {
    return "umockdev or its Python bindings are missing (apt-get install -y --no-install-recommends umockdev gir1.2-umockdev-1.0 python3-gi)";
  }
  return undefined;
}

export class GpioSim {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  readonly output: string[] = [];
  private readonly dir: string;
  private readonly logFile: string;
  private readonly control: string;
  private changed: () => void = () => {};

  /** Starts `command` under simulated `chips`; its stdin, stdout and stderr are pipes. */
  constructor(chips: ChipSpec[], command: string[], env: Record<string, string | undefined> = process.env) {
    this.dir = mkdtempSync(join(tmpdir(), "jmp-gpiosim-"));
    const spec = join(this.dir, "spec.json");
    this.logFile = join(this.dir, "log.jsonl");
    this.control = join(this.dir, "control.sock");
    writeFileSync(spec, JSON.stringify({ chips }));
    writeFileSync(this.logFile, "");
    this.proc = Bun.spawn([PYTHON, RUNNER, spec, this.logFile, this.control, "--", ...command], {
      env, stdin: "pipe", stdout: "pipe", stderr: "pipe",
    });
    void this.collect(this.proc.stdout);
    void this.collect(this.proc.stderr);
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop()!;
      this.output.push(...parts);
      this.changed();
    }
  }

  /** Waits for a line of the command's output that `found` maps to something; fails if it exits first. */
  async waitForOutput<T>(found: (line: string) => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.proc.exited.then(() => {
      exited = true;
      this.changed();
    });
    for (;;) {
      for (const l of this.output) {
        const r = found(l);
        if (r !== undefined) return r;
      }
      const left = deadline - Date.now();
      if (exited || left <= 0) {
        throw new Error(`${exited ? `the command exited (${this.proc.exitCode})` : "nothing came"} while waiting for ${what}; its output:\n${this.output.join("\n")}`);
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

  /** Everything logged so far, in order. */
  records(): SimRecord[] {
    return readFileSync(this.logFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as SimRecord);
  }

  /** The ioctls logged so far (optionally: of one request name), in order. */
  ioctls(name?: string): SimRecord[] {
    return this.records().filter((r) => r.ioctl && (!name || r.ioctl === name));
  }

  /** Drives a line from outside (as a button or a board's status pin would); edge events follow. */
  pull(chip: string, offset: number, level: 0 | 1 | null): Promise<LineState> {
    return this.command(`pull ${chip} ${offset} ${level ?? "none"}`);
  }

  /** What a line is doing now. */
  line(chip: string, offset: number): Promise<LineState> {
    return this.command(`line ${chip} ${offset}`);
  }

  private command(text: string): Promise<LineState> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.control);
      let answer = "";
      socket.on("error", reject);
      socket.on("data", (d) => {
        answer += d.toString();
        if (!answer.includes("\n")) return;
        socket.end();
        const parsed = JSON.parse(answer) as LineState & { error?: string };
        if (parsed.error) reject(new Error(parsed.error));
        else resolve(parsed);
      });
      socket.write(`${text}\n`);
    });
  }

  /**
   * Ends the command: by closing its stdin (SIGTERM if it has not ended 5 s later),
   * or at once with SIGTERM (passed on to the command, as systemd stops an exporter).
   * Its exit code.
   */
  async stop(how: "stdin" | "SIGTERM" = "stdin"): Promise<number> {
    if (how === "SIGTERM") {
      this.proc.kill("SIGTERM");
      return this.proc.exited;
    }
    try {
      this.proc.stdin.end();
    } catch {
      // already closed
    }
    const ended = await Promise.race([this.proc.exited, Bun.sleep(5000).then(() => undefined)]);
    if (ended === undefined) this.proc.kill("SIGTERM");
    return this.proc.exited;
  }

  /** Stops the command and removes the simulation's files. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
