/**
 * Simulated USB devices for tests: runs a command under umockdev-usb.py (see there
 * for what it simulates, how, and its limits), then lets a test read the control
 * transfers and HID reports the command sent and what the devices now do.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const PYTHON = "/usr/bin/python3";
const RUNNER = join(import.meta.dir, "umockdev-usb.py");

interface Common {
  /** `1-1.2`; `1` is the root hub of bus 1 (made up for every bus used, unless given). */
  location: string;
  vendor?: number;
  product?: number;
  manufacturer?: string;
  product_name?: string;
  serial?: string;
  /** The device node's mode, e.g. "0600" (with `runAs`, to meet permissions). */
  mode?: string;
}

export type DeviceSpec =
  | (Common & { kind: "hub"; vendor: number; product: number; ports?: number; power_switching?: "per-port" | "ganged" | "none"; usb3?: boolean; overcurrent?: number[] })
  | (Common & { kind: "ykush" })
  | (Common & { kind: "sdwire"; disk?: string; disk_size?: number; mux?: "host" | "dut" })
  | (Common & { kind: "noyito-hid"; channels?: 4 | 8 })
  | (Common & { kind: "noyito-serial"; tty?: string })
  | (Common & { kind: "device"; vendor: number; product: number; class?: number; tty?: string });

/** One line of the simulation's log. */
export interface UsbRecord {
  device: string;
  /** A control transfer, decoded: what the command sent and what the device did. */
  transfer?: "control";
  bmRequestType?: string;
  bRequest?: number;
  wValue?: string;
  wIndex?: number;
  wLength?: number;
  data?: string;
  answer?: string;
  decoded?: string;
  result?: string;
  /** A hidraw report: `write` what the command wrote (hex, report ID first), `sent` what the device sent back. */
  hidraw?: string;
  write?: string;
  sent?: string;
  /** Other usbdevfs ioctls, and opens of the usbfs node. */
  ioctl?: string;
  open?: string;
  /** A tty: `received` what the command wrote (hex), `sent` what the device answered. */
  tty?: string;
  received?: string;
}

/** Why the simulation cannot run here, or undefined when it can. */
export function simulationMissing(): string | undefined {
  const probe = Bun.spawnSync([PYTHON, "-c", "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"]);
  const ldconfig = Bun.spawnSync(["/sbin/ldconfig", "-p"]).stdout.toString();
  if (probe.exitCode !== 0 || !ldconfig.includes("libumockdev-preload.so.0")) {
    return "umockdev or its Python bindings are missing (apt-get install -y --no-install-recommends umockdev gir1.2-umockdev-1.0 python3-gi)";
  }
  if (!ldconfig.includes("libusb-1.0.so.0")) return "libusb-1.0 is missing (apt-get install -y --no-install-recommends libusb-1.0-0)";
  return undefined;
}

export class UsbSim {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  readonly output: string[] = [];
  private readonly dir: string;
  private readonly logFile: string;
  private readonly control: string;
  private readonly finalState: string;
  private changed: () => void = () => {};

  /**
   * Starts `command` with `devices` plugged in; its stdin, stdout and stderr are pipes.
   * `runAs` ("uid:gid") runs it as another user, as an exporter's user meets permissions.
   */
  constructor(devices: DeviceSpec[], command: string[], opts: { env?: Record<string, string | undefined>; runAs?: string } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "jmp-usbsim-"));
    const spec = join(this.dir, "spec.json");
    this.logFile = join(this.dir, "log.jsonl");
    this.control = join(this.dir, "control.sock");
    this.finalState = join(this.dir, "final-state.json");
    writeFileSync(spec, JSON.stringify({ devices, run_as: opts.runAs, final_state: this.finalState }));
    writeFileSync(this.logFile, "");
    this.proc = Bun.spawn([PYTHON, RUNNER, spec, this.logFile, this.control, "--", ...command], {
      env: opts.env ?? process.env, stdin: "pipe", stdout: "pipe", stderr: "pipe",
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
    if (partial) this.output.push(partial);
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

  /** Everything logged so far, in order. */
  records(): UsbRecord[] {
    return readFileSync(this.logFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as UsbRecord);
  }

  /** The control transfers logged so far (optionally: to one device), in order. */
  transfers(device?: string): UsbRecord[] {
    return this.records().filter((r) => r.transfer && (!device || r.device === device));
  }

  /** The HID reports the command wrote so far (optionally: to one device), hex, report ID first. */
  reportsWritten(device?: string): string[] {
    return this.records().filter((r) => r.write !== undefined && (!device || r.device === device)).map((r) => r.write!);
  }

  /** The bytes the command wrote to a device's tty, hex, chunk by chunk as they arrived. */
  ttyReceived(device?: string): string {
    return this.records().filter((r) => r.received !== undefined && (!device || r.device === device)).map((r) => r.received!).join("");
  }

  /**
   * Every device's state: port power, the mux, relays, the disk file (the host's view
   * of the card). After the command has ended: as it was then.
   */
  async state(): Promise<Record<string, any>> {
    if (this.proc.exitCode !== null) {
      await this.proc.exited;
      return JSON.parse(readFileSync(this.finalState, "utf8"));
    }
    return new Promise((resolve, reject) => {
      const socket = connect(this.control);
      let answer = "";
      socket.on("error", reject);
      socket.on("data", (d) => {
        answer += d.toString();
        if (!answer.includes("\n")) return;
        socket.end();
        const parsed = JSON.parse(answer) as Record<string, any> & { error?: string };
        if (parsed.error) reject(new Error(parsed.error));
        else resolve(parsed);
      });
      socket.write("state\n");
    });
  }

  /** Ends the command by closing its stdin (SIGTERM if it has not ended 5 s later). Its exit code. */
  async stop(): Promise<number> {
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
