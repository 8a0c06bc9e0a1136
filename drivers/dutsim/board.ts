/**
 * The simulated board itself, free of gRPC: power, a boot log over a configurable
 * time, a getty-style login and a tiny shell, behind a tty in cooked mode (input
 * echoed, Enter → "\r\n", backspace erases). Output goes to the `transmit` callback
 * the way a UART sends bytes: nothing buffers here.
 */
import { KERNEL_RELEASE, runCommandLine } from "./shell.ts";

export interface BoardOptions {
  hostname: string;
  username: string;
  /** When set, login asks for it after the user name. */
  password?: string;
  /** What `uname -m` reports. */
  arch: string;
  /** How long from power-on (or reboot) to the login prompt. */
  bootTimeMs: number;
  /** How the board tells time: real time unless a test passes a FakeClock. */
  clock?: BoardClock;
}

export interface BoardClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

const REAL_TIME: BoardClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export type BoardState = "off" | "booting" | "login" | "password" | "shell";

const CR = 0x0d;
const LF = 0x0a;
const BACKSPACE = 0x08;
const DELETE = 0x7f;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
/** Linux's tty keeps at most this many bytes of an unfinished line and drops the rest. */
const MAX_LINE = 4095;

export class DutSimBoard {
  private current: BoardState = "off";
  /** Aborted at power-off: ends a boot in progress, so nothing more is printed. */
  private powerCycle?: AbortController;
  private bootedAt = 0;
  private line: number[] = [];
  private afterCR = false;
  private loginName = "";
  private lastStatus = 0;
  private readonly encoder = new TextEncoder();
  private readonly clock: BoardClock;

  constructor(
    readonly options: BoardOptions,
    private readonly transmit: (bytes: Uint8Array) => void,
  ) {
    this.clock = options.clock ?? REAL_TIME;
  }

  get state(): BoardState {
    return this.current;
  }

  get powered(): boolean {
    return this.current !== "off";
  }

  /** Seconds since the board last started booting (0 when off). */
  get uptime(): number {
    return this.powered ? (this.clock.now() - this.bootedAt) / 1000 : 0;
  }

  /** Powers on and starts booting; does nothing if already on. */
  powerOn(): void {
    if (this.powered) return;
    this.powerCycle = new AbortController();
    void this.boot(this.powerCycle.signal);
  }

  /** Cuts power: output stops at once and input is ignored until the next power-on. */
  powerOff(): void {
    this.powerCycle?.abort();
    this.powerCycle = undefined;
    this.current = "off";
    this.line = [];
  }

  /** Bytes typed on the console. */
  input(bytes: Uint8Array): void {
    for (const b of bytes) {
      // While off or booting nothing reads the line; the bytes are lost, as on a real board.
      if (this.current === "off" || this.current === "booting") return;
      const wasCR = this.afterCR;
      this.afterCR = b === CR;
      // A terminal or script sending "\r\n" means one Enter, not an Enter and an empty line.
      if (b === LF && wasCR) continue;
      if (b === CR || b === LF) this.enter();
      else if (b === DELETE || b === BACKSPACE) this.erase();
      else if (b === CTRL_C) this.interrupt();
      else if (b === CTRL_D) this.endOfFile();
      else if ((b >= 0x20 || b === 0x09) && this.line.length < MAX_LINE) {
        this.line.push(b);
        if (this.current !== "password") this.transmit(Uint8Array.of(b));
      }
    }
  }

  private print(text: string): void {
    this.transmit(this.encoder.encode(text.replace(/\n/g, "\r\n")));
  }

  private async boot(signal: AbortSignal): Promise<void> {
    this.current = "booting";
    this.bootedAt = this.clock.now();
    this.line = [];
    this.lastStatus = 0;
    try {
      for (const step of bootLog(this.options)) {
        const due = this.bootedAt + step.at * this.options.bootTimeMs;
        await this.sleep(Math.max(0, due - this.clock.now()), signal);
        this.print(step.text);
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
    this.loginPrompt();
  }

  /** Resolves after `ms` on the board's clock; rejects at once when `signal` aborts. */
  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const stop = () => {
        this.clock.clearTimer(timer);
        reject(signal.reason);
      };
      const timer = this.clock.setTimer(() => {
        signal.removeEventListener("abort", stop);
        resolve();
      }, ms);
      signal.addEventListener("abort", stop, { once: true });
    });
  }

  private loginPrompt(): void {
    this.current = "login";
    this.print(`${this.options.hostname} login: `);
  }

  private shellPrompt(): void {
    this.current = "shell";
    const sign = this.options.username === "root" ? "#" : "$";
    this.print(`${this.options.username}@${this.options.hostname}:~${sign} `);
  }

  private enter(): void {
    const text = new TextDecoder().decode(Uint8Array.from(this.line));
    this.line = [];
    this.print("\n");
    if (this.current === "login") this.login(text.trim());
    else if (this.current === "password") this.checkPassword(text);
    else if (this.current === "shell") this.run(text);
  }

  private login(name: string): void {
    if (name === "") return this.loginPrompt();
    this.loginName = name;
    if (this.options.password !== undefined) {
      this.current = "password";
      this.print("Password: ");
    } else if (name === this.options.username) {
      this.shellPrompt();
    } else {
      this.loginIncorrect();
    }
  }

  private checkPassword(password: string): void {
    if (this.loginName === this.options.username && password === this.options.password) this.shellPrompt();
    else this.loginIncorrect();
  }

  private loginIncorrect(): void {
    this.print("\nLogin incorrect\n");
    this.loginPrompt();
  }

  private run(line: string): void {
    const result = runCommandLine(line, {
      hostname: this.options.hostname,
      user: this.options.username,
      arch: this.options.arch,
      uptime: this.uptime,
      lastStatus: this.lastStatus,
    });
    this.lastStatus = result.status;
    this.print(result.output);
    if (result.then === "reboot") {
      this.print(`[${timestamp(this.uptime)}] reboot: Restarting system\n`);
      void this.boot(this.powerCycle!.signal);
    } else if (result.then === "logout") {
      this.print("\n");
      this.loginPrompt();
    } else {
      this.shellPrompt();
    }
  }

  private erase(): void {
    const removed = this.line.pop();
    if (removed === undefined) return;
    // Drop the rest of a multi-byte UTF-8 character so the line stays valid text.
    let b = removed;
    while ((b & 0xc0) === 0x80 && this.line.length) b = this.line.pop()!;
    if (this.current !== "password") this.print("\b \b");
  }

  private interrupt(): void {
    this.line = [];
    this.print("^C\n");
    if (this.current === "shell") {
      this.lastStatus = 130;
      this.shellPrompt();
    } else {
      this.loginPrompt();
    }
  }

  private endOfFile(): void {
    if (this.line.length > 0 || this.current !== "shell") return;
    this.print("\n");
    this.loginPrompt();
  }
}

/** A kernel-style "[    1.234567]" stamp. */
function timestamp(seconds: number): string {
  return seconds.toFixed(6).padStart(12, " ");
}

/** What the board prints while booting; `at` is the fraction of the boot time. */
function bootLog(o: BoardOptions): { at: number; text: string }[] {
  const kernel = (at: number, seconds: number, text: string) => ({ at, text: `[${timestamp(seconds)}] ${text}\n` });
  return [
    { at: 0, text: "\nU-Boot 2024.04-dutsim (Jan 01 2024 - 00:00:00 +0000)\n\n" },
    { at: 0.02, text: "Model: DutSim virtual board\nDRAM:  1 GiB\nMMC:   mmc@fe2c0000: 0\nIn:    serial\nOut:   serial\nErr:   serial\n" },
    { at: 0.1, text: "Hit any key to stop autoboot:  0\n" },
    { at: 0.2, text: "Starting kernel ...\n\n" },
    kernel(0.25, 0, `Booting Linux on physical CPU 0x0000000000 (${o.arch})`),
    kernel(0.25, 0, `Linux version ${KERNEL_RELEASE} (builder@dutsim) (gcc 13.2.0) #1 SMP PREEMPT`),
    kernel(0.3, 0.000001, "Machine model: DutSim virtual board"),
    kernel(0.45, 0.512348, "Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled"),
    kernel(0.6, 1.203042, "mmcblk0: mmc0:0001 DUTSIM 7.28 GiB"),
    kernel(0.75, 1.845127, "EXT4-fs (mmcblk0p2): mounted filesystem with ordered data mode"),
    kernel(0.85, 2.101015, "Run /sbin/init as init process"),
    { at: 1, text: "\nWelcome to DutSim\n\n" },
  ];
}
