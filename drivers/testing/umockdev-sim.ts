/**
 * For tests: a command run under simulated devices, one of the umockdev simulations
 * (drivers/gpiod/testing/umockdev-gpiochip.py, drivers/usb-common/testing/umockdev-usb.py;
 * what they share is umockdev_testbed.py). The command's output is collected line by
 * line, what reached the devices is read from the simulation's log, and the devices
 * are asked about (or driven) through its control socket. GpioSim and UsbSim add the
 * devices' own words.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { readLines } from "../../src/common/lines.ts";

/** Debian's, which has the umockdev bindings (python3-gi, gir1.2-umockdev-1.0). */
const PYTHON = "/usr/bin/python3";

/** Why no umockdev simulation can run here, or undefined when one can. */
export function umockdevMissing(): string | undefined {
  const probe = Bun.spawnSync([PYTHON, "-c", "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"]);
  const preload = Bun.spawnSync(["/sbin/ldconfig", "-p"]).stdout.toString().includes("libumockdev-preload.so.0");
  if (probe.exitCode !== 0 || !preload) {
    return "umockdev or its Python bindings are missing (apt-get install -y --no-install-recommends umockdev gir1.2-umockdev-1.0 python3-gi)";
  }
  return undefined;
}

export interface SimOptions {
  env?: Record<string, string | undefined>;
  /** "uid:gid": runs the command as another user, as an exporter's user meets permissions. */
  runAs?: string;
}

/** A command running under a simulation; `R` is a line of the simulation's log. */
export class UmockdevSim<R> {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  /** The command's stdout and stderr lines, as they came. */
  readonly output: string[] = [];
  private readonly dir: string;
  private readonly logFile: string;
  private readonly control: string;
  /** Where the simulation leaves the devices' state when the command has ended (if it does). */
  protected readonly finalState: string;
  private changed: () => void = () => {};

  /** Starts `command` under `script`'s devices as `spec` describes them; its stdin, stdout and stderr are pipes. */
  constructor(script: string, spec: Record<string, unknown>, command: string[], opts: SimOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "jmp-umockdev-"));
    const specFile = join(this.dir, "spec.json");
    this.logFile = join(this.dir, "log.jsonl");
    this.control = join(this.dir, "control.sock");
    this.finalState = join(this.dir, "final-state.json");
    writeFileSync(specFile, JSON.stringify({ ...spec, run_as: opts.runAs, final_state: this.finalState }));
    writeFileSync(this.logFile, "");
    this.proc = Bun.spawn([PYTHON, script, specFile, this.logFile, this.control, "--", ...command], {
      env: opts.env ?? process.env, stdin: "pipe", stdout: "pipe", stderr: "pipe",
    });
    void this.collect(this.proc.stdout);
    void this.collect(this.proc.stderr);
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    await readLines(stream, (lines) => {
      this.output.push(...lines);
      this.changed();
    });
    this.changed();
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

  /** Everything the simulation logged so far, in order. */
  records(): R[] {
    return readFileSync(this.logFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as R);
  }

  /** The simulation's answer to one line on its control socket; an answer with `error` rejects. */
  protected ask<T>(command: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.control);
      let answer = "";
      socket.on("error", reject);
      socket.on("data", (d) => {
        answer += d.toString();
        if (!answer.includes("\n")) return;
        socket.end();
        const parsed = JSON.parse(answer) as T & { error?: string };
        if (parsed.error) reject(new Error(parsed.error));
        else resolve(parsed);
      });
      socket.write(`${command}\n`);
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
