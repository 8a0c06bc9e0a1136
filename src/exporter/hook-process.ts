/**
 * One run of a hook's program: on a pseudo-terminal (pty.ts), in a session and
 * process group of its own, its output turned into readable lines as it comes.
 *
 * The run is over when the program itself exits. Whatever it left running in its
 * group (`cmd &`) is ended then, SIGTERM and SIGKILL after a grace, as the whole
 * group is at the timeout: a hook must not leave processes behind that hold a
 * board's devices into the next lease. Something that left the group on purpose
 * (setsid, systemd-run) is not ours to end; we stop reading the terminal it may
 * still hold after a moment.
 */
import { closeSync, readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { openPty } from "./pty.ts";

/** Between SIGTERM and SIGKILL, as upstream ("a few seconds"). */
export const GRACE_MS = 5000;
/** After the group is gone, how long to wait for the last output from a process that left it. */
const LINGER_MS = 1000;
/** A line longer than this is cut (a hook that prints binary junk without newlines). */
const MAX_LINE = 2000;
/** Output beyond this much per run is read (so the hook never blocks) but not passed on. */
const MAX_OUTPUT = 4 * 1024 * 1024;

export interface HookProcessOptions {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
  /** Each line of output, made readable (see OutputLines). */
  onLine: (line: string) => void;
  /** Aborting it ends the run as a timeout does (the exporter is stopping). */
  signal?: AbortSignal;
}

export interface HookProcessResult {
  /** The exit status, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** Processes it left in its group were ended. */
  leftovers: boolean;
  durationMs: number;
}

/** Its signal name from a number, as Bun reports it. */
function signalName(sig: NodeJS.Signals | number | null): NodeJS.Signals | null {
  if (sig === null || typeof sig === "string") return sig;
  return (Object.entries(osConstants.signals).find(([, n]) => n === sig)?.[0] as NodeJS.Signals | undefined) ?? null;
}

/** The live (not zombie) processes of a process group, from /proc. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  // Cheap first: no process at all (the usual end of a hook) needs no look at /proc.
  try {
    process.kill(-pgid, 0);
  } catch {
    return members;
  }
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return members;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z" && state !== "X") members.push(Number(name));
    } catch {
      // Exited while we looked.
    }
  }
  return members;
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // The group is gone.
  }
}

/** Polls until the group has no live process; false if it still has one after `ms`. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (groupMembers(pgid).length === 0) return true;
    if (performance.now() >= deadline) return false;
    await Bun.sleep(50);
  }
}

/** SIGTERM to the group, SIGKILL to what is left after the grace. */
export async function endGroup(pgid: number): Promise<void> {
  signalGroup(pgid, "SIGTERM");
  if (await groupGone(pgid, GRACE_MS)) return;
  signalGroup(pgid, "SIGKILL");
  await groupGone(pgid, 1000);
}

/**
 * Bytes from a terminal to lines a person and a log can read: UTF-8 with
 * replacement characters for what is not, no escape sequences (colours, cursor
 * moves), a carriage return shows what a terminal would (the text after it), other
 * control characters become U+FFFD, long lines are cut, empty ones dropped.
 */
export class OutputLines {
  private readonly decoder = new TextDecoder();
  private pending = "";
  private bytes = 0;
  private capped = false;

  constructor(private readonly emit: (line: string) => void) {}

  push(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    if (this.bytes > MAX_OUTPUT) {
      if (!this.capped) {
        this.capped = true;
        this.flush(true);
        this.emit(`(the rest of the output is not shown: more than ${MAX_OUTPUT / 1024 / 1024} MiB)`);
      }
      return;
    }
    this.pending += this.decoder.decode(chunk, { stream: true });
    this.flush(false);
  }

  end(): void {
    if (this.capped) return;
    this.pending += this.decoder.decode();
    this.flush(true);
  }

  private flush(all: boolean): void {
    const parts = this.pending.split("\n");
    this.pending = all ? "" : parts.pop()!;
    // Junk without newlines would otherwise pile up here.
    if (this.pending.length > MAX_LINE * 2) {
      parts.push(this.pending);
      this.pending = "";
    }
    for (const part of parts) {
      const line = readable(part);
      if (line) this.emit(line);
    }
  }
}

// CSI (ESC [ … final byte), OSC (ESC ] … BEL or ESC \), and other two-byte escapes.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

export function readable(raw: string): string {
  const shown = raw.replace(ESCAPES, "").replace(/\r+$/, "").split("\r").pop()!;
  const line = shown.replace(CONTROLS, "\uFFFD").trimEnd();
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}… (${line.length - MAX_LINE} more characters)` : line;
}

/** Runs the program to its end (or its timeout) and resolves with how it ended; throws only if it cannot start. */
export async function runHookProcess(opts: HookProcessOptions): Promise<HookProcessResult> {
  const started = performance.now();
  const pty = openPty();
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(opts.argv, {
      cwd: opts.cwd,
      env: opts.env,
      stdin: pty.slave,
      stdout: pty.slave,
      stderr: pty.slave,
      // setsid(): a session and process group of its own, led by the program.
      detached: true,
    });
  } catch (e) {
    closeSync(pty.master);
    throw new Error(`cannot start ${opts.argv[0]}: ${(e as Error).message}`);
  } finally {
    closeSync(pty.slave);
  }
  const pgid = proc.pid;
  const lines = new OutputLines(opts.onLine);
  const reader = Bun.file(pty.master).stream().getReader();
  // The terminal reads EIO once no process has it open any more: that is its end.
  const read = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        lines.push(value);
      }
    } catch {
      // EIO, or cancelled below.
    }
    lines.end();
  })();

  let timedOut = false;
  let aborted = false;
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= endGroup(pgid));
  const timer = setTimeout(() => {
    timedOut = true;
    void stop();
  }, opts.timeoutMs);
  const onAbort = () => {
    aborted = true;
    void stop();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  await proc.exited;
  clearTimeout(timer);
  opts.signal?.removeEventListener("abort", onAbort);
  const leftovers = !stopping && groupMembers(pgid).length > 0;
  if (stopping || leftovers) await stop();
  await Promise.race([read, Bun.sleep(LINGER_MS)]);
  await reader.cancel().catch(() => {});
  await read;
  closeSync(pty.master);
  return {
    code: proc.exitCode,
    signal: signalName(proc.signalCode),
    timedOut,
    aborted,
    leftovers,
    durationMs: performance.now() - started,
  };
}
