/**
 * One QEMU process and the host end of its serial port. The driver keeps the
 * serial socket open for the whole life of the process and feeds a Uart, so
 * console clients can come and go without losing boot output.
 */
import net from "node:net";
import { DriverError, UnavailableError } from "@jumpstarter/driver";
import type { Uart } from "../dutsim/uart.ts";

export interface VmLog {
  info(message: string): void;
  warn(message: string): void;
}

/** How long QEMU may take to open its serial socket (it also loads firmware first). */
const START_TIMEOUT_MS = 10_000;
/** How long a SIGTERM'd QEMU gets before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;

/**
 * QEMU processes of this exporter. A QEMU does not notice its parent dying, so
 * when the exporter exits without closing its sessions (a crash, process.exit)
 * they are killed here rather than left running with the board's disk open.
 */
const live = new Set<Bun.Subprocess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

export class QemuVm {
  private proc?: Bun.Subprocess<"ignore", "ignore", "pipe">;
  private serial?: net.Socket;
  private stopping = false;

  constructor(
    private readonly uart: Uart,
    private readonly log: VmLog,
  ) {}

  get running(): boolean {
    return this.proc !== undefined;
  }

  /**
   * Starts QEMU and connects to its serial socket; resolves once the guest runs.
   * A QEMU that exits during start-up fails this with what it printed.
   */
  async start(argv: string[], serialSocket: string): Promise<void> {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    this.proc = proc;
    live.add(proc);
    this.stopping = false;
    const stderr = collectLines(proc.stderr, (line) => this.log.info(`qemu: ${line}`));
    let exited = false;
    void proc.exited.then((code) => {
      exited = true;
      live.delete(proc);
      if (this.proc !== proc) return;
      this.proc = undefined;
      this.serial?.destroy();
      this.serial = undefined;
      if (!this.stopping) this.log.warn(`QEMU exited by itself (${describeExit(code, proc.signalCode)}): the board is off`);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (exited) {
        await stderr.done;
        const said = stderr.tail().join("\n") || "(nothing on stderr)";
        throw new DriverError(`QEMU exited at start-up (${describeExit(proc.exitCode, proc.signalCode)}):\n${said}\ncommand: ${argv.join(" ")}`);
      }
      const socket = await connectOnce(serialSocket);
      if (socket) {
        this.attach(socket);
        return;
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new UnavailableError(`QEMU did not open its serial port ${serialSocket} within ${START_TIMEOUT_MS / 1000} s`);
      }
      await Bun.sleep(20);
    }
  }

  private attach(socket: net.Socket): void {
    this.serial = socket;
    socket.on("data", (chunk: Buffer) => this.uart.transmit(new Uint8Array(chunk)));
    socket.on("error", (e) => this.log.warn(`serial port: ${e.message}`));
    socket.on("close", () => {
      if (this.serial === socket) this.serial = undefined;
    });
  }

  /** Keys typed on the console; dropped while the board is off, as on real hardware. */
  input(bytes: Uint8Array): void {
    this.serial?.write(bytes);
  }

  /** SIGTERM (QEMU shuts down cleanly on it), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.stopping = true;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      this.log.warn(`QEMU ignored SIGTERM for ${STOP_TIMEOUT_MS / 1000} s; killing it`);
      proc.kill("SIGKILL");
    }, STOP_TIMEOUT_MS);
    await proc.exited;
    clearTimeout(timer);
    this.proc = undefined;
    this.serial?.destroy();
    this.serial = undefined;
  }
}

function connectOnce(path: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(undefined);
    });
  });
}

function describeExit(code: number | null, signal: string | number | null | undefined): string {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

/** Reads a process's stderr line by line, keeping the last lines for error messages. */
function collectLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const kept: string[] = [];
  const done = (async () => {
    let partial = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        onLine(line);
        kept.push(line);
        if (kept.length > 20) kept.shift();
      }
    }
    if (partial.trim()) {
      onLine(partial);
      kept.push(partial);
    }
  })();
  return { done, tail: () => kept };
}
