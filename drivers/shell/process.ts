/**
 * One run of a shell method: a child in its own process group whose stdout and
 * stderr arrive as events the moment they are read, then its exit. Stopping
 * early (timeout, a cancelled call, the end of the lease) ends the whole group,
 * so `cmd &` children do not outlive the call.
 */
import { constants } from "node:os";
import type { ReadableStreamDefaultReader } from "node:stream/web";
import { UnavailableError } from "@jumpstarter/driver";

export type RunEvent =
  | { kind: "stdout" | "stderr"; text: string }
  | { kind: "exit"; code: number; timedOut: boolean }
  /** Nothing happened for `idleMs`: gives the consumer a chance to notice it was cancelled. */
  | { kind: "idle" };

export interface RunOptions {
  cwd?: string;
  env: Record<string, string | undefined>;
  timeoutMs: number;
  idleMs: number;
}

/** Between SIGTERM and SIGKILL, as upstream. */
const GRACE_MS = 5000;
/** After SIGKILL, how long to wait for pipes an escaped grandchild may still hold. */
const PIPE_LINGER_MS = 1000;

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Python reports a death by signal N as return code -N; so do we, for upstream clients. */
function exitCode(proc: { exitCode: number | null; signalCode: NodeJS.Signals | number | null }): number {
  if (proc.exitCode !== null) return proc.exitCode;
  const signal = typeof proc.signalCode === "number" ? proc.signalCode : proc.signalCode ? constants.signals[proc.signalCode] : undefined;
  return signal ? -signal : -1;
}

type Child = Bun.Subprocess<"ignore", "pipe", "pipe">;
type PipeReader = ReadableStreamDefaultReader<Uint8Array>;

class EventQueue {
  private items: RunEvent[] = [];
  private wake?: () => void;

  push(e: RunEvent): void {
    this.items.push(e);
    this.wake?.();
  }

  async next(idleMs: number): Promise<RunEvent> {
    const ready = this.items.shift();
    if (ready) return ready;
    let timer: Timer | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      timer = setTimeout(resolve, idleMs);
    });
    clearTimeout(timer);
    this.wake = undefined;
    return this.items.shift() ?? { kind: "idle" };
  }
}

/** A started command; read it with {@link ShellRun.events}, end it early with {@link ShellRun.stop}. */
export class ShellRun {
  private readonly proc: Child;
  private readonly queue = new EventQueue();
  private readonly readers: PipeReader[];
  /** Both pipes at end of file and the leader reaped. */
  private readonly finished: Promise<unknown>;
  private exited = false;
  private timedOut = false;
  private stopping?: Promise<void>;

  constructor(argv: string[], private readonly opts: RunOptions) {
    try {
      this.proc = Bun.spawn(argv, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
    } catch (e) {
      throw new UnavailableError(`cannot start ${JSON.stringify(argv[0])}: ${(e as Error).message}`, { cause: e });
    }
    this.readers = [this.proc.stdout.getReader(), this.proc.stderr.getReader()];
    this.finished = Promise.all([this.pump(this.readers[0]!, "stdout"), this.pump(this.readers[1]!, "stderr"), this.proc.exited]);
    const timer = setTimeout(() => {
      this.timedOut = true;
      void this.stop();
    }, opts.timeoutMs);
    void this.finished.then(() => {
      clearTimeout(timer);
      this.exited = true;
      this.queue.push({ kind: "exit", code: exitCode(this.proc), timedOut: this.timedOut });
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Output as it is read, then the exit; leaving the loop early stops the group. */
  async *events(): AsyncGenerator<RunEvent> {
    try {
      for (;;) {
        const event = await this.queue.next(this.opts.idleMs);
        yield event;
        if (event.kind === "exit") return;
      }
    } finally {
      if (!this.exited) await this.stop();
    }
  }

  /** SIGTERM to the group, SIGKILL after the grace period; resolves when it is gone. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.exited) return;
      const pgid = this.proc.pid;
      signalGroup(pgid, "SIGTERM");
      if (await this.settles(GRACE_MS)) return;
      signalGroup(pgid, "SIGKILL");
      if (await this.settles(PIPE_LINGER_MS)) return;
      // Something left the group (setsid) and kept our pipes open; stop waiting for it.
      await Promise.all(this.readers.map((r) => r.cancel().catch(() => {})));
    })();
    return this.stopping;
  }

  private settles(ms: number): Promise<boolean> {
    return Promise.race([this.finished.then(() => true), Bun.sleep(ms).then(() => false)]);
  }

  private async pump(reader: PipeReader, kind: "stdout" | "stderr"): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        if (text) this.queue.push({ kind, text });
      }
    } catch {
      // Cancelled by stop(): whatever was still coming belongs to a killed group.
    }
    const rest = decoder.decode();
    if (rest) this.queue.push({ kind, text: rest });
  }
}
